"""The exception hierarchy: one root, specific leaves that carry their evidence."""

from __future__ import annotations

import errno
import shlex

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .analysis.experiment import ExperimentAnalysis
    from .core.trial import Trial


class AsynctuneError(Exception):
    """Root of every error asynctune raises on purpose."""


class SearchSpaceError(AsynctuneError, ValueError):
    """A search space is malformed: bad bounds, an empty choice, a sample_from cycle."""


class TrialFailed(AsynctuneError):
    """A trial raised or its worker died.

    Attributes:
        trial_id: The failed trial.
        error: One line naming the cause (exception type and message, or the signal).
        traceback: The full traceback text from the worker, when there is one.
    """

    def __init__(self, trial_id: str, error: str, traceback: str = "") -> None:
        super().__init__(f"trial {trial_id} failed: {error}")
        self.trial_id = trial_id
        self.error = error
        self.traceback = traceback


class TrialsFailed(AsynctuneError):
    """Trials failed for good (after their retries), as many as `run(raise_on_failed_trial=...)`
    makes an error: by default all of them. Raised after the experiment ended and was saved.

    Attributes:
        failed: The failed trials, in the order they were added.
        analysis: The experiment's `ExperimentAnalysis`, to look at what the trials reported.
    """

    def __init__(self, failed: Sequence[Trial], total: int, analysis: ExperimentAnalysis) -> None:
        first = failed[0]
        count = f"all {total} trials" if len(failed) == total else f"{len(failed)} of {total} trials"
        from .store.names import ERROR_FILE, error_file  # errors is imported by the store: not at the top
        where = error_file(first.path) if first.path else f"its {ERROR_FILE}"
        super().__init__(f"{count} failed; the first: {first.trial_id}: {first.error} (traceback in {where})")
        self.failed: list[Trial] = list(failed)
        self.analysis = analysis


# A function trainable written for Optuna or Ray's quick start returns its metric.
RETURNED_HINT = ("a return value is not a result; report it, e.g. asynctune.report(loss=loss) or "
                 "asynctune.report(**metrics), before returning")


class NothingReported(AsynctuneError):
    """Every trial returned and none reported a result: the trainable never called
    asynctune.report (a script still calling another library's report, say).

    Attributes:
        foreign_reports: Other tuning libraries' report functions the trials had imported.
        analysis: The experiment's `ExperimentAnalysis`.
    """

    def __init__(self, trials: int, foreign_reports: Sequence[str], analysis: ExperimentAnalysis, *,
                 returned: str | None = None) -> None:
        instead = (f"; the trainable imported {' and '.join(sorted(foreign_reports))}: call asynctune.report(...) "
                   f"where it calls that" if foreign_reports else "")
        instead += f"; it returned a {returned}: {RETURNED_HINT}" if returned is not None else ""
        super().__init__(f"none of the {trials} trial(s) reported a result: asynctune.report(...) was never called "
                         f"in the trainable{instead}")
        self.foreign_reports = sorted(foreign_reports)
        self.analysis = analysis


class ExecutorError(AsynctuneError):
    """An executor could not start, reach or keep a worker."""


class WorkerLost(ExecutorError):
    """A worker process ended without saying so (killed, OOM, crashed).

    Attributes:
        exit_code: The process exit code; negative for a signal, as in subprocess.
        stderr_tail: The last lines the worker wrote to stderr.
    """

    def __init__(self, message: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class HostUnreachable(ExecutorError):
    """A remote host could not be reached or dropped its connection."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"host {host} unreachable: {reason}")
        self.host = host
        self.reason = reason


class HostKeyRefused(HostUnreachable):
    """The host's key is not the one known_hosts holds for it: missing, or changed (a reinstalled
    machine, or someone in between). asynctune never connects to it then.

    Attributes:
        inspect: Shell commands that show the key known_hosts holds and the key the host offers.
    """

    def __init__(self, host: str, reason: str, inspect: str) -> None:
        super().__init__(host, reason)
        self.inspect = inspect


class ExecutorLost(ExecutorError):
    """The executor as a whole is gone (e.g. the Dask scheduler): no trial can run any more.

    Raised from `TrialRun.events()` or `Executor.launch()`; the controller then ends the
    experiment with every unfinished trial resumable, saves its state, and raises this.
    """


class UnsafeFileError(AsynctuneError):
    """A pickle asynctune was about to load could have been written by another user.

    Attributes:
        path: The file that was not loaded.
        reason: What was found (owner or mode, of the file or its directory).
        fix: The command that makes it private again, if you trust its contents.
    """

    def __init__(self, path: str, reason: str, fix: str) -> None:
        super().__init__(f"refusing to unpickle {path}: {reason}; unpickling runs code, so only files "
                         f"nobody else can write are loaded. If you trust it, run: {fix}")
        self.path = path
        self.reason = reason
        self.fix = fix


class UntrustedFileError(UnsafeFileError):
    """A pickle asynctune was about to load is not signed with this user's key (store/signing.py):
    the directory was made by another user or machine, by an older asynctune, or changed since.

    Attributes:
        path: The file that was not loaded.
        reason: What was found (unsigned, another key, the key file's mode).
        fix: How to trust it after a review (`asynctune trust DIR`, or trust=True).
    """

    def __init__(self, path: str, reason: str, fix: str) -> None:
        AsynctuneError.__init__(self, f"refusing to load {path}: {reason}. {fix}")
        self.path = path
        self.reason = reason
        self.fix = fix


class ExperimentDamaged(AsynctuneError, ValueError):
    """An experiment directory is damaged in a way resume cannot repair without guessing.

    Attributes:
        path: The damaged file or directory.
        remedy: What to do about it.
    """

    def __init__(self, path: str, problem: str, remedy: str) -> None:
        super().__init__(f"cannot resume: {path} {problem}; {remedy}")
        self.path = path
        self.remedy = remedy


def resume_command(experiment_dir: str) -> str:
    """The shell command that resumes `experiment_dir`, quoted so that it can be pasted as it is
    (a directory with a space in its name is one argument).

    Example:
        >>> resume_command("/home/me/my results/exp")
        "asynctune resume '/home/me/my results/exp'"
    """
    return f"asynctune resume {shlex.quote(experiment_dir)}"


class StorageFull(AsynctuneError, OSError):
    """The disk holding the experiment is full (ENOSPC, or a quota: EDQUOT).

    The experiment stops: running trials are killed as resumable (not failed), experiment.json
    is saved as INTERRUPTED, and this is raised with the command that continues it.

    Attributes:
        path: The file that could not be written.
        experiment_dir: The experiment to resume once there is room.
    """

    def __init__(self, path: str, experiment_dir: str = "") -> None:
        hint = resume_command(experiment_dir) if experiment_dir else "asynctune resume <experiment dir>"
        super().__init__(f"No space left on device writing {path}. The experiment stopped; what was reported "
                         f"is on disk. Free space, then resume with: {hint}")
        self.errno = errno.ENOSPC  # for code that checks OSError.errno
        self.path = path
        self.experiment_dir = experiment_dir


class StateNotWritten(StorageFull):
    """The experiment's journal could not be written for another reason than space (a file-size
    limit, a file system turned read-only, an I/O error). What the run did next could not be
    recorded, so it stops as on a full disk: resumable, with the command that continues it.

    Attributes:
        path, experiment_dir: As StorageFull's.
        cause: The error writing it.
    """

    def __init__(self, path: str, experiment_dir: str, cause: OSError) -> None:
        super().__init__(path, experiment_dir)
        OSError.__init__(self, f"could not write {path}: {cause.strerror or cause}. The experiment stopped; what was "
                         f"reported is on disk. Fix that, then resume with: {resume_command(experiment_dir)}")
        self.errno, self.cause = cause.errno, cause


class RunSpecNotWritten(AsynctuneError, OSError):
    """The file that lets an experiment be resumed (run_spec.pkl) could not be written as the run
    or resume began: nothing was started. Fix the cause (space, a file-size limit, a read-only
    file system) and run or resume again.

    Attributes:
        path: The file.
        cause: The error writing it.
    """

    def __init__(self, path: str, cause: OSError) -> None:
        super().__init__(f"could not write {path}: {cause.strerror or cause}. Nothing was started; fix that and "
                         "run (or resume) again")
        self.errno, self.path, self.cause = cause.errno, path, cause


class ResultsNotWritten(AsynctuneError, OSError):
    """A consolidated simulation's results.jsonl could not be written (store/recording.py).

    Every trial's results go to that one file, so the simulation stops at once (status ERROR)
    and this is raised as it ends; a simulation is rerun, not resumed.

    Attributes:
        path: The results file.
    """

    def __init__(self, path: str, cause: OSError) -> None:
        room = " once there is room" if is_disk_full(cause) else ""
        super().__init__(f"could not write {path} ({cause.strerror or cause}): the simulation stopped and its "
                         f"latest results are not on disk; rerun it{room}")
        self.errno = cause.errno
        self.path = path


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT: no trial's fault, and retrying it cannot help until there is room."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def names_disk_full(error: str) -> bool:
    """A trial's error text (e.g. "OSError: [Errno 28] No space left on device: ...") says the disk is full."""
    return f"[Errno {errno.ENOSPC}]" in error or f"[Errno {errno.EDQUOT}]" in error
