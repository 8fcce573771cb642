"""Resuming an experiment whose driver died: rebuild the trial table from what is on disk.

What survives a killed driver, and what each part of the state is rebuilt from:
- the run's arguments, trainable, searcher, scheduler and executor as they were at the start:
  run_spec.pkl (cloudpickle, written before the first trial);
- the trial table: journal.jsonl (every trial's life, appended and flushed as it changes);
- every result: each trial's result.jsonl; every checkpoint: its checkpoint_* directories;
- the searcher: searcher_state.pkl, saved after every suggestion and every completion;
- the scheduler: replayed, by showing a fresh one every recorded result in order.
Trials that were running restart from their newest complete checkpoint; results they reported
after it move to result.rewound.jsonl, since the restarted trial reports them again.

Damage is repaired from the other files where that is safe, else refused with ExperimentDamaged
naming the file: the trial directories (params.pkl/params.json, result.jsonl) are the ground
truth for which trials exist and what they reported; a trial the journal lacks (journal deleted
or cut) is taken from the experiment.json snapshot, or else restarted from its checkpoint; lines
of a .jsonl file that are not JSON objects move to `<file>.damaged` (a torn last line to
`<file>.torn`). A trial id is never reused and results are never mixed or doubled.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ..errors import ExperimentDamaged, RunSpecNotWritten, UnsafeFileError
from .private_files import make_dir_private, open_private
from .layout import (
    EXPERIMENT_FILE, JOURNAL_FILE, PARAMS_FILE, PARAMS_PICKLE_FILE, RESULT_FILE, RESULTS_FILE, RUN_SPEC_FILE,
    SEARCHER_STATE_FILE,
    latest_checkpoint, read_params, read_results, repair_jsonl, write_params,
)
from . import journal
from .names import RESTARTED_DIR, is_checkpoint_name
from .paths import checked, refuse_links_out
from .signing import load_signed_pickle, read_verified, sign
from . import checkpoints
from .format import NewerFormat, read_experiment_file
from .recording_policy import policy_of
from ..core.trial import Status, Trial

logger = logging.getLogger(__name__)


@dataclass
class ResumeState:
    experiment_dir: str
    run_kwargs: dict[str, Any]
    trainable: Any
    status: str
    time_used_s: float
    trials: list[Trial] = field(default_factory=list)


def save_run_spec(experiment_dir: str, run_kwargs: dict[str, Any], trainable_blob: bytes,
                  kwargs_blob: bytes | None) -> None:
    """Keep run()'s arguments (fresh searcher and scheduler included) for a later resume.

    `kwargs_blob` is the arguments pickled before anything used them; None if they could not
    be pickled, in which case callbacks and executor are left out (resume() takes them again)."""
    if kwargs_blob is None:
        keep = {k: v for k, v in run_kwargs.items() if k not in ("callbacks", "executor")}
        kwargs_blob = cloudpickle.dumps(keep)
    data = cloudpickle.dumps({"run_kwargs": kwargs_blob, "trainable": trainable_blob})
    path = os.path.join(experiment_dir, RUN_SPEC_FILE)
    tmp = path + ".tmp"
    try:
        with open_private(tmp, "wb") as f:
            f.write(sign(data))
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a file-size limit, a read-only file system: before any trial
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise RunSpecNotWritten(path, exc) from exc


def load_resume_state(experiment_dir: str) -> ResumeState:
    """Read an experiment directory for resuming; clear errors for what is missing or corrupt."""
    experiment_dir = os.path.abspath(os.path.expanduser(experiment_dir))
    if not os.path.isdir(experiment_dir):
        raise ValueError(f"cannot resume {experiment_dir}: no such directory")
    refuse_links_out(experiment_dir)  # before any file is read, or rewound, through a link
    spec_path = os.path.join(experiment_dir, RUN_SPEC_FILE)
    try:
        spec = load_signed_pickle(spec_path, loads=cloudpickle.loads)
        trainable = cloudpickle.loads(spec["trainable"])
        kwargs = cloudpickle.loads(spec["run_kwargs"])
    except FileNotFoundError:
        raise ValueError(f"cannot resume {experiment_dir}: it has no {RUN_SPEC_FILE} "
                         "(not an asynctune experiment, or its driver died before the first trial)") from None
    except UnsafeFileError:
        raise
    except ImportError as exc:  # the trainable's module, importable where the first run ran
        raise ValueError(f"cannot resume {experiment_dir}: {RUN_SPEC_FILE} (the trainable and run()'s arguments) needs module "
                         f"{exc.name!r}, which this process cannot import ({type(exc).__name__}: {exc}); resume "
                         "from the directory the first run ran in, or add that module's directory to "
                         "PYTHONPATH") from exc
    except Exception as exc:
        raise ValueError(f"cannot resume {experiment_dir}: {RUN_SPEC_FILE} is unreadable "
                         f"({type(exc).__name__}: {exc})") from exc
    for name in (EXPERIMENT_FILE, JOURNAL_FILE, SEARCHER_STATE_FILE):  # files the resume rewrites or appends to
        if os.path.isdir(os.path.join(experiment_dir, name)):
            raise ExperimentDamaged(os.path.join(experiment_dir, name), "is a directory, not a file",
                                    "move it away to resume (the journal and the trial directories hold the trials)")
    status, time_used, snapshot_trials = "UNKNOWN", 0.0, {}
    try:
        snapshot = read_experiment_file(experiment_dir)  # a newer format is refused (NewerFormat)
        status, time_used = snapshot.get("status") or "UNKNOWN", float(snapshot.get("time_used_s") or 0.0)
        snapshot_trials = {t["trial_id"]: t for t in snapshot.get("trials") or []}
    except NewerFormat:
        raise
    except (OSError, ValueError):
        pass  # a missing or damaged snapshot is fine: the journal and the trial directories hold the truth
    if (os.path.exists(os.path.join(experiment_dir, RESULTS_FILE))  # the disk says how it was recorded,
            or not policy_of(kwargs.get("executor")).resumable):  # or the saved executor
        if status == "FINISHED":  # nothing to resume: its trials are in experiment.json
            return ResumeState(experiment_dir, kwargs, trainable, status, time_used, [])
        raise ValueError(
            f"cannot resume {experiment_dir}: a simulation recorded with recording='consolidated' (the "
            "SimulatedExecutor's default) keeps no journal and is rerun, not resumed; run it again "
            "(SimulatedExecutor(recording='batched') or 'files' makes a simulation resumable)")
    trials = _rebuild_trials(experiment_dir, snapshot_trials)
    for trial in trials:
        _restore_trial(trial, kwargs.get("metric"), kwargs.get("mode"))
    return ResumeState(experiment_dir, kwargs, trainable, status, time_used, trials)


def caught_up(experiment_dir: str, summaries: list[dict[str, Any]], metric: Any, mode: Any) -> list[dict[str, Any]]:
    """The trial table of an experiment whose driver was killed, as a reader sees it: experiment.json's
    `summaries` (saved at most once a second, so possibly behind) brought up to the journal's trials
    and statuses and to the results in the trial directories. Reads only: resume repairs.

        >>> caught_up(experiment_dir, read_experiment_file(experiment_dir)["trials"], "loss", "min")  # doctest: +SKIP
    """
    checked(experiment_dir, os.path.join(experiment_dir, JOURNAL_FILE))  # as every reader: no link out
    replayed = journal.replay(journal.read_intact(experiment_dir), experiment_dir)
    if not replayed.trials:
        return summaries  # no journal (a consolidated simulation): the snapshot is all there is
    table = {str(s.get("trial_id")): dict(s) for s in summaries}
    for trial_id, trial in replayed.trials.items():
        summary = table.setdefault(trial_id, trial.summary())  # a trial the snapshot lacks: the journal's
        summary.update(status=trial.status.value, num_failures=trial.num_failures, error=trial.error)
        if trial_id in replayed.configured:  # a mutation (PBT) since the snapshot
            summary["config"] = trial.config
        directory = os.path.join(experiment_dir, trial_id)
        checked(experiment_dir, os.path.join(directory, RESULT_FILE))
        results = read_results(directory)
        if results:
            best = Trial(trial_id=trial_id, config={})
            for result in results:
                best.update_best(metric, mode, result)
            summary.update(num_results=len(results), last_result=results[-1], metric_best=best.metric_best)
    return sorted(table.values(), key=lambda s: s.get("index") or 0)


def restore_searcher(searcher: Any, experiment_dir: str) -> bool:
    """Give a resumed searcher its saved state; a clear error if searcher_state.pkl is damaged.
    False if there is none (the searcher could not be saved): replay.replay_searcher then."""
    path = os.path.join(experiment_dir, SEARCHER_STATE_FILE)
    if not os.path.exists(path):
        return False
    state = read_verified(path)  # restore() unpickles it: only a state signed with this user's key
    try:
        with tempfile.TemporaryDirectory() as private:  # 0700
            unsigned = os.path.join(private, SEARCHER_STATE_FILE)
            with open_private(unsigned, "wb") as f:
                f.write(state)
            searcher.restore(unsigned)
    except Exception as exc:
        raise ExperimentDamaged(
            path, f"is unreadable ({type(exc).__name__}: {exc})",
            "move it away to resume with a searcher rebuilt by replaying the recorded trials to it "
            "(the trials already run are kept)") from exc
    return True


def _result_problem(result: dict[str, Any], line: int) -> str | None:
    iteration = result.get("training_iteration", 0)
    if isinstance(iteration, int) and not isinstance(iteration, bool) and iteration >= 0:
        return None
    return f"field 'training_iteration' is {iteration!r}, expected a whole number >= 0"


def _rebuild_trials(experiment_dir: str, snapshot: dict[str, dict[str, Any]]) -> list[Trial]:
    """The trial table: the journal's, completed from the trial directories and the snapshot."""
    replayed = journal.recover(experiment_dir)  # damaged lines moved aside; a newer format refused
    trials, configured = replayed.trials, replayed.configured
    directories = sorted(name for name in os.listdir(experiment_dir)
                         if journal.TRIAL_ID.fullmatch(name) and os.path.isdir(os.path.join(experiment_dir, name)))
    for name in directories:
        if name in trials:
            continue
        path = os.path.join(experiment_dir, name)
        if read_params(path) is None and not read_results(path):
            # The driver died while adding it (the directory is made before its params are
            # written): it never ran, so it is added again as if new.
            logger.warning("%s: %s was being added when the driver stopped; it starts afresh", experiment_dir, name)
            continue
        # Added to the experiment, but its journal lines are gone (journal deleted or cut).
        trial = trials[name] = Trial(trial_id=name, config={}, index=journal.trial_index(name),
                                     path=os.path.join(experiment_dir, name))
        known = snapshot.get(name, {})
        try:
            trial.status = Status(known.get("status", Status.PENDING.value))
            trial.num_failures = int(known.get("num_failures", 0) or 0)
        except (ValueError, TypeError):
            trial.status = Status.PENDING
        trial.resources = known.get("resources") if isinstance(known.get("resources"), dict) else {}
        trial.error = known.get("error")
        logger.warning("%s: trial %s is not in %s; rebuilt from its directory%s", experiment_dir, name, JOURNAL_FILE,
                       " and experiment.json" if known else " (it restarts from its newest checkpoint)")
    for trial in trials.values():
        _refuse_what_is_in_the_way(trial.path)
        config = read_params(trial.path)  # the config with its types (params.pkl)
        if config is not None:
            trial.config = config
        elif trial.trial_id not in configured:
            raise ExperimentDamaged(
                trial.path, f"has neither a readable {PARAMS_PICKLE_FILE} nor {PARAMS_FILE}, and no other file "
                "holds its config", "restore the file, or move the directory out of the experiment to resume "
                "without it")
    ordered = sorted(trials.values(), key=lambda t: t.index)
    for position, trial in enumerate(ordered):
        if trial.index != position:  # a gap: the next new trial would get an id that was used
            missing = f"trial_{position:05d}"
            raise ExperimentDamaged(
                os.path.join(experiment_dir, missing), "is missing (neither a directory nor a journal entry), "
                f"but {trial.trial_id} exists", f"restore it, or move every trial directory after it out of "
                f"{experiment_dir} to resume without them")
    return ordered


def _refuse_what_is_in_the_way(trial_dir: str) -> None:
    """ExperimentDamaged where a trial's directory, or its result.jsonl, is something else: the
    resume would read and write there."""
    results = os.path.join(trial_dir, RESULT_FILE)
    if os.path.lexists(trial_dir) and not os.path.isdir(trial_dir):
        raise ExperimentDamaged(trial_dir, "is a file, not the trial's directory",
                                "move it away to resume without what it held")
    if os.path.isdir(results):
        raise ExperimentDamaged(results, "is a directory, not a file", "move it away to resume without what it held")


def _restore_trial(trial: Trial, metric: str | None, mode: str | None) -> None:
    if trial.status in (Status.FINISHED, Status.EARLY_STOPPED) and not os.path.isdir(trial.path):
        # Its results and checkpoints went with its directory: run it again rather than keep an
        # ended trial that reported nothing (a failed one stays failed: its error says why).
        logger.warning("%s's directory is gone (deleted?): its results with it; it runs again from the start",
                       trial.trial_id)
        trial.status = Status.PENDING
    if not os.path.isdir(trial.path):  # made again with its config, as when it was added
        make_dir_private(trial.path)
        write_params(trial.path, trial.config, new=True)
    checkpoints.sweep_staging(trial.path)  # what a killed writer left unfinished: never restored
    recorded = repair_jsonl(os.path.join(trial.path, RESULT_FILE), _result_problem)
    last_iteration = max((int(r.get("training_iteration", 0)) for r in recorded), default=0)
    newest = latest_checkpoint(trial.path, max_iteration=last_iteration)
    if newest is not None:
        trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_total = newest
    if trial.status in (Status.RUNNING, Status.PENDING, Status.PAUSED):
        trial.status = Status.PAUSED if trial.status is Status.PAUSED else Status.PENDING
        _restart_from(trial, trial.checkpoint, found=newest is not None)
    trial.num_results = len(recorded)
    trial.last_result = recorded[-1] if recorded else None
    for result in recorded:
        trial.update_best(metric, mode, result)
    if recorded:
        trial.start_time = recorded[0].get("timestamp")


def _restart_from(trial: Trial, checkpoint: str | None, *, found: bool) -> None:
    """It will run again from `checkpoint` (None: from the start): what it reported after that
    comes again, and moves to result.rewound.jsonl when it does (controller/runtime.py); until
    then it counts."""
    trial.restore_checkpoint = checkpoint
    trial.restore_iteration = trial.checkpoint_iteration if found else 0
    trial.restore_time_total = trial.checkpoint_time_total if found else 0.0


def reopen_errored(trials: list[Trial], *, restart: bool = False) -> list[Trial]:
    """Make the trials that failed for good (ERROR) run again: from their newest checkpoint, or
    with `restart` from the start (Ray's resume_errored / restart_errored). Returns them."""
    errored = [trial for trial in trials if trial.status is Status.ERROR]
    for trial in errored:
        trial.status, trial.error, trial.error_traceback, trial.num_failures = Status.PENDING, None, None, 0
        if restart:  # the failed attempt's checkpoints are never restored again, by a retry or a resume
            _set_aside_checkpoints(trial.path)
            trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_total = None, 0, 0.0
        found = not restart and trial.checkpoint is not None and os.path.isdir(trial.checkpoint)
        _restart_from(trial, trial.checkpoint if found else None, found=found)
    return errored


def _set_aside_checkpoints(trial_dir: str) -> None:
    """Move a trial's checkpoints to restarted/<n>/ in its directory: kept, never restored."""
    names = sorted(name for name in _listdir(trial_dir) if is_checkpoint_name(name))
    if not names:
        return
    parent = os.path.join(trial_dir, RESTARTED_DIR)
    make_dir_private(parent)
    attempt = os.path.join(parent, str(len(_listdir(parent))))
    make_dir_private(attempt)
    for name in names:
        os.replace(os.path.join(trial_dir, name), os.path.join(attempt, name))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def recorded_history(trials: list[Trial]) -> Iterator[tuple[Trial, dict[str, Any]]]:
    """Every recorded result of every trial, in the order they were reported; of a trial that
    will restart from a checkpoint, those up to it (it reports the others again)."""
    history = [(r.get("timestamp", 0.0), t.index, i, t, r)
               for t in trials for i, r in enumerate(read_results(t.path)) if _kept(t, r)]
    history.sort(key=lambda item: item[:3])
    for _, _, _, trial, result in history:
        yield trial, result


def _kept(trial: Trial, result: dict[str, Any]) -> bool:
    if trial.status.is_finished:
        return True
    return int(result.get("training_iteration", 0)) <= trial.restore_iteration
