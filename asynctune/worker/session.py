"""The trial side of the narrow waist: what a training function calls inside a worker.

    def train(config):
        start = asynctune.get_checkpoint() or {"epoch": 0}
        for epoch in range(start["epoch"], 100):
            loss = ...
            asynctune.report(loss=loss, checkpoint={"epoch": epoch + 1})

`report()` sends the result to the driver and waits for the decision on it, so a decision on
result k (stop, pause, mutate) is in force before step k+1 starts.

A trial the driver runs `pipelined` (TrialRequest.pipelined) does not wait: `report()` sends the
result and returns; the answers that have arrived meanwhile are read at each report, without
blocking. The driver runs a trial so when its scheduler's `synchronous_results` gives a
collection (FIFOScheduler: none; ASHA: its rungs and max_t; MedianStoppingRule with hard_stop:
none) and, on the local executor, no stop criterion (run(stop=...)) is given; the SSH executor
pipelines with one too, and stops exactly at a training_iteration threshold. The results in
`sync_iterations` still wait for every answer, so the scheduler's decisions there are in force
before the next step, exactly as without pipelining. For the user nothing changes but speed,
except that decisions from elsewhere may land a step or a few later: a decision on any other
result (another trial's stop_trial or pause_trial, the experiment ending, a scheduler's decision
its synchronous_results said may be late) lands as many steps late as ran meanwhile; the driver
drops the results sent after the one it decided on, so none of them is recorded, and a late STOP
saves no checkpoint_at_end (the trial's state is past its last recorded result); a late PAUSE
resumes from the newest reported checkpoint. A MUTATE is acknowledged with ("mutated",) so the
driver knows where the new config's results begin; a late one that finds the trial ended is not
carried out. At most PIPELINE_WINDOW results go unanswered: then report() waits for the oldest
answer, so a trial never runs unboundedly ahead of its driver. The trial ends ("done" or
"error") without waiting for the last answers: the driver holds its end until it has decided
them, and the worker skips those that reach it after the end.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import AsynctuneError
from .protocol import FrameTooLarge, read_decision
from .recordable import RECORDABLE, UnrecordableResult, check_result, largest_value
from ..core.trial import Decision, Mutate
from ..store.private_files import make_tree_private, open_private
from ..store.signing import dump_signed, load_signed_pickle, use_key
from ..store import checkpoints
from ..store.names import checkpoint_data, checkpoint_dir, checkpoint_meta, checkpoint_name

# Pipelined: the most results sent and not answered yet. Enough that a worker never waits on a
# driver that keeps up (a window is ~1 ms of results); few enough that one that cannot keep up
# holds the worker back instead of queueing its results in the driver's memory.
PIPELINE_WINDOW = 128


class _TrialInterrupt(BaseException):
    """Unwinds the trainable when a decision ends or changes it (not an error: BaseException)."""

    late = False  # see _interrupt()


class StopTrial(_TrialInterrupt):
    pass


class PauseTrial(_TrialInterrupt):
    pass


class MutateTrial(_TrialInterrupt):
    def __init__(self, config: dict[str, Any], checkpoint: str | None) -> None:
        super().__init__()
        self.config, self.checkpoint = config, checkpoint


def _interrupt(decision: Any, *, late: bool) -> _TrialInterrupt:
    """The exception that carries out a decision other than CONTINUE. `late`: pipelined, the
    trial ran on past the result it answers, so its state is ahead of the driver's last result."""
    if decision is Decision.STOP:
        interrupt: _TrialInterrupt = StopTrial()
    elif decision is Decision.PAUSE:
        interrupt = PauseTrial()
    else:
        interrupt = MutateTrial(decision.config, decision.checkpoint)
    interrupt.late = late
    return interrupt


class TrialSession:
    """The running trial, as seen from inside its worker."""

    def __init__(self, channel: Any, request: Any) -> None:
        self.channel = channel
        self.request = request
        self.trial_id: str = request.trial_id
        self.trial_dir: str = request.trial_dir
        self.config: dict[str, Any] = request.config
        self.iteration: int = request.start_iteration
        self.time_total: float = request.start_time_total
        self.restore_checkpoint: str | None = request.restore_checkpoint
        self.last_checkpoint: str | None = request.restore_checkpoint
        self.reports = 0  # results reported in this attempt
        self._last_time = time.time()
        self._hostname = socket.gethostname()
        self.worker_pid = os.getpid()  # the process that runs the trial (its results say pid=)
        self.pipelined: bool = getattr(request, "pipelined", False)
        self.sync_iterations: frozenset[int] = frozenset(getattr(request, "sync_iterations", ()) or ())
        self.unanswered = 0  # pipelined: results sent whose answer is not read yet
        # Threads running before this trial began (in a reused worker: ones an earlier trial left
        # running) are not this trial's: a result they report would be recorded as this trial's.
        self._earlier_threads = set(threading.enumerate()) - {threading.current_thread()}
        self.stray_reports = 0  # results refused from such threads: the worker is retired after the trial
        self.returned: str | None = None  # the type a function trainable returned, other than None
        use_key(getattr(request, "signing_key", None) or None)  # the driver's: its checkpoints verify there

    # Results -----------------------------------------------------------------------------------

    def report(self, metrics: Mapping[str, Any], checkpoint: Any = None, *, checkpoint_dir: str | None = None) -> None:
        if threading.current_thread() in self._earlier_threads:
            self.stray_reports += 1
            raise AsynctuneError(
                f"report() was called from a thread that was running before trial {self.trial_id} began (one an "
                f"earlier trial left running in this reused worker): its result is not {self.trial_id}'s. End the "
                f"threads a trainable starts before it returns (join them), or use LocalExecutor(reuse_workers=False)")
        if os.getpid() != self.worker_pid:  # a copy made by os.fork() would send on the trial's channel
            raise AsynctuneError(
                f"report() was called in a process the trial forked (pid {os.getpid()}; the trial's is {self.worker_pid}): "
                f"only the trial's own process reports; send what the child computed to it (a "
                f"multiprocessing.Queue or Pipe) and report there")
        now = time.time()
        elapsed = now - self._last_time
        if self.unanswered:  # pipelined: the answers that came meanwhile are in force before this result
            self.read_answers(block=False, ahead=True)
        self._last_time = now
        check_result(metrics)  # a value that cannot be recorded is named here, in the trial
        self.reports += 1
        self.iteration += 1
        self.time_total += elapsed
        result = dict(metrics)
        result.update(
            trial_id=self.trial_id, training_iteration=self.iteration, time_this_iter_s=elapsed,
            time_total_s=self.time_total, timestamp=now, hostname=self._hostname, pid=self.worker_pid,
        )
        if checkpoint is not None:
            checkpoint_dir = self.save_checkpoint(checkpoint)
        if checkpoint_dir is not None:
            self.last_checkpoint = checkpoint_dir
        try:
            self.channel.send(("result", result, checkpoint_dir))
        except FrameTooLarge as exc:
            raise UnrecordableResult(f"report(): the result is too large to send to the driver: {exc}; "
                                     f"{largest_value(metrics)} keep large data in a checkpoint or in a file "
                                     f"under asynctune.get_trial_dir()") from None
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise UnrecordableResult(f"report(): the result cannot be sent to the driver ({type(exc).__name__}: "
                                     f"{exc}); {RECORDABLE}") from exc
        if self.pipelined:
            self.unanswered += 1
            self._last_time = time.time()
            if self.iteration in self.sync_iterations:  # the scheduler decides here: wait for it
                self.read_answers(block=True)
            elif self.unanswered >= PIPELINE_WINDOW:  # the driver is behind: wait for its oldest answer
                self.read_answers(block=True, keep=PIPELINE_WINDOW - 1)
            return
        decision = read_decision(self.channel.receive())
        # The time spent waiting for the decision is the framework's, not the trial's.
        self._last_time = time.time()
        if decision is not Decision.CONTINUE:
            raise _interrupt(decision, late=False)

    def read_answers(self, *, block: bool, ahead: bool = False, keep: int = 0) -> None:
        """Pipelined: read the answers to the results sent (with `block`, until at most `keep`
        are unanswered; else those already here) and carry out the first that is not CONTINUE;
        the driver answers none of the results sent after that one. `ahead`: the trial has run
        a step it has not reported."""
        started = time.time()
        try:
            while self.unanswered > keep and (block or _answer_waiting(self.channel)):
                decision = read_decision(self.channel.receive())
                self.unanswered -= 1
                if decision is Decision.CONTINUE:
                    continue
                late = ahead or self.unanswered > 0  # it answers an earlier result: the trial ran on since
                self.iteration -= self.unanswered  # the answered result's: the driver drops those after it
                self.unanswered = 0
                if isinstance(decision, Mutate):
                    self.channel.send(("mutated",))  # the results after this are the new config's
                raise _interrupt(decision, late=late)
        finally:
            if block:
                self._last_time += time.time() - started  # the wait is the framework's, not the step's

    # Checkpoints -------------------------------------------------------------------------------

    def new_checkpoint_dir(self) -> str:
        """An empty directory to fill; `publish_checkpoint` gives it its name once it is complete."""
        return checkpoints.staging_dir(self.trial_dir, checkpoint_name(self.iteration))

    def publish_checkpoint(self, staging: str) -> str:
        """Write the metadata into the complete checkpoint `staging` and rename it into place."""
        self.write_checkpoint_meta(staging)
        return checkpoints.publish(staging, checkpoint_dir(self.trial_dir, self.iteration))

    def save_checkpoint_with(self, write: Callable[[str], Any], *, ahead: int = 0) -> str:
        """A checkpoint that `write(directory)` fills in place, in the trial's directory (no scratch
        copy elsewhere: a worker killed while writing leaves nothing outside the experiment, and a
        large model is written once), for the result `ahead` results after the last reported one.
        Its files are made private and it is published; its directory is returned."""
        self.iteration += ahead
        try:
            staging = self.new_checkpoint_dir()
            try:
                write(staging)
                make_tree_private(staging)  # written under the process's umask
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return self.publish_checkpoint(staging)
        finally:
            self.iteration -= ahead

    def save_checkpoint(self, checkpoint: Any) -> str:
        """Keep a dict or a directory as this iteration's checkpoint; return its directory."""
        target = self.new_checkpoint_dir()
        if isinstance(checkpoint, Mapping):
            write_checkpoint_data(target, dict(checkpoint))
        elif isinstance(checkpoint, (str, os.PathLike)) and os.path.isdir(checkpoint):
            if os.path.realpath(checkpoint) != os.path.realpath(target):
                shutil.copytree(checkpoint, target, dirs_exist_ok=True)
            make_tree_private(target)  # copytree kept the modes of the trial's own files
        else:
            shutil.rmtree(target, ignore_errors=True)
            raise TypeError(
                f"checkpoint must be a dict or an existing directory, got {type(checkpoint).__name__}: {checkpoint!r}"
            )
        return self.publish_checkpoint(target)

    def write_checkpoint_meta(self, path: str) -> None:
        write_checkpoint_meta(path, iteration=self.iteration, time_total_s=self.time_total, trial_id=self.trial_id)

    def adopt_checkpoint(self, path: str | None) -> None:
        """Continue from `path` (after a mutate): counters resume where it was taken."""
        self.restore_checkpoint = self.last_checkpoint = path
        if path is not None:
            meta = read_checkpoint_meta(path)
            self.iteration = int(meta.get("iteration", self.iteration))
            self.time_total = float(meta.get("time_total_s", self.time_total))


def _answer_waiting(channel: Any) -> bool:
    """Whether a message from the driver can be read now (a BlockingChannel's buffer or pipe)."""
    if getattr(channel, "_buffer", None):
        return True
    read_fd = getattr(channel, "read_fd", None)
    if read_fd is None:
        return True  # a channel we cannot poll: read, which may wait
    return bool(select.select([read_fd], [], [], 0)[0])


def write_checkpoint_data(path: str, data: dict[str, Any]) -> None:
    """A dict checkpoint into its directory, pickled and signed (store/signing.py)."""
    with open_private(checkpoint_data(path), "wb") as f:
        dump_signed(data, f)


def load_checkpoint(path: str | None, *, trust: bool = False) -> Any:
    """A checkpoint as the trial gave it: the dict, or the directory path. A dict checkpoint is
    unpickled only if signed with this user's key (or `trust`: after a review)."""
    if path is None:
        return None
    data = checkpoint_data(path)
    if os.path.exists(data):
        return load_signed_pickle(data, trust=trust)
    return path


def write_checkpoint_meta(path: str, *, iteration: int, time_total_s: float, trial_id: str | None = None) -> None:
    """The metadata that makes `path` a complete checkpoint: written last, it lists the files."""
    files = checkpoints.manifest(path)  # before the metadata file exists: it is not in it
    with open_private(checkpoint_meta(path), "w") as f:
        json.dump({"trial_id": trial_id, "iteration": iteration, "time_total_s": time_total_s, "files": files}, f)


def read_checkpoint_meta(path: str) -> dict[str, Any]:
    try:
        with open(checkpoint_meta(path)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}  # damaged: as if it had none


# --- the public functions ------------------------------------------------------------------

_current: TrialSession | None = None


def _session(name: str) -> TrialSession:
    if _current is None:
        raise AsynctuneError(f"asynctune.{name}() can only be called inside a trial started by asynctune.run()")
    return _current


def report(metrics: Mapping[str, Any] | None = None, /, *, checkpoint: Any = None, **kwargs: Any) -> None:
    """Report one result of the running trial, optionally with a checkpoint.

    Example:
        >>> asynctune.report(loss=0.3, accuracy=0.91, checkpoint={"weights": w, "epoch": 3})
        >>> asynctune.report({"loss": 0.3}, checkpoint="/tmp/my_ckpt_dir")

    Args:
        metrics: A dict of results (or pass them as keyword arguments).
        checkpoint: A small picklable dict, or a directory the trial wrote (it is copied into
            the trial's directory). `get_checkpoint()` gives it back after a pause or restore.
    """
    if metrics is not None and not isinstance(metrics, Mapping):
        raise TypeError(f"report() takes a dict of metrics or keyword arguments, got {type(metrics).__name__}")
    merged = {**(metrics or {}), **kwargs}
    _session("report").report(merged, checkpoint)


def get_checkpoint() -> Any:
    """The checkpoint to resume from (a dict or a directory path), or None on a fresh start."""
    return load_checkpoint(get_checkpoint_dir())


def get_checkpoint_dir() -> str | None:
    """The directory of the checkpoint to resume from, also for a dict checkpoint (its pickle is
    in there), or None on a fresh start."""
    return _session("get_checkpoint").restore_checkpoint


def get_trial_id() -> str:
    return _session("get_trial_id").trial_id


def get_trial_dir() -> str:
    """The trial's own directory, for files it wants kept (the working directory is not changed)."""
    return _session("get_trial_dir").trial_dir


def get_trial_resources() -> dict[str, Any]:
    """Where the trial was placed (Placement.as_dict()): {"host", "cpu", "gpu", "gpus": [{"index",
    "uuid", "fraction"}, ...], "gpu_memory_mb", "cuda_visible_devices"}; see docs/resources.md."""
    return dict(_session("get_trial_resources").request.placement)
