"""One trial as the controller holds it: its run, recorder, pending requests and checkpoints.

A `TrialRuntime` is made once per trial and lives for the whole session, because some of its
state spans attempts: the recorder, the checkpoints kept so far, a resume that waits for a
pause to land. What belongs to one attempt (the run, the stop/pause requests, the kill and
memory flags) is reset by `start()`. Every change of `trial.status` happens in one of the
transition methods below, which check where the trial comes from:

    PENDING/PAUSED --start--> RUNNING --paused--> PAUSED --resume--> PENDING
    RUNNING --retry/interrupted--> PENDING        any unfinished --finish--> FINISHED/EARLY_STOPPED
    RUNNING/PENDING --fail--> ERROR
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StorageFull, is_disk_full
from ..executors.base import ResultEvent, TrialRun
from .resource_monitor import MemoryLimitExceeded
from ..reporting.callback import CallbackList
from ..core.resources import Placement
from ..worker.session import read_checkpoint_meta
from ..store.recording import BatchWriter, Recorder
from ..store.recording_policy import POLICIES, RecordingPolicy
from ..store.layout import PARAMS_FILE, PROGRESS_FILE, RESULT_FILE, copy_checkpoint, remove_checkpoint
from ..store.names import ERROR_FILE, clone_name
from ..core.trial import Decision, Mutate, Status, Trial

logger = logging.getLogger(__name__)

Changed = Callable[..., None]  # changed(trial, event="status"): journal the trial's new state


class TrialStorageError(Exception):
    """A write into one trial's directory failed (not for lack of space): that trial's failure.

    Every write TrialRuntime makes into the trial's directory raises this, or `StorageFull`
    when the disk is full, so the controller has one path for each."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(f"could not write {path}: [Errno {error.errno}] {error.strerror or error}")
        self.path = path


class TrialRuntime:
    """The controller's handle on one trial (see the module docstring for its transitions)."""

    __slots__ = ("trial", "run", "stop_requested", "pause_requested", "resume_request", "killing", "overdue",
                 "memory_error", "write_error", "kept_checkpoints", "rewind_pending", "_recorder", "_metric", "_mode",
                 "_keep", "_changed",
                 "_callbacks", "_recording", "_writer")

    def __init__(self, trial: Trial, *, metric: str | None, mode: str | None, keep_checkpoints_num: int | None,
                 changed: Changed, callbacks: CallbackList, recording: RecordingPolicy = POLICIES["files"],
                 writer: BatchWriter | None = None) -> None:
        self.trial = trial
        self.run: TrialRun | None = None  # the running attempt, once the executor launched it
        self.stop_requested = False  # by a scheduler's stop_trial: STOP at the next result
        self.pause_requested = False  # by pause_trial: PAUSE at the next result
        self.resume_request: tuple[dict[str, Any] | None, str | None] | None = None  # once paused
        self.killing = False  # the controller kills it: its lost worker is no failure
        self.overdue: Decision | None = None  # told to stop/pause, it did not return in time: killed
        self.memory_error: MemoryLimitExceeded | None = None  # killed for memory: ends as ERROR
        self.write_error: str | None = None  # killed because its directory cannot be written: a failure
        self.kept_checkpoints: list[str] = []  # older checkpoints still on disk (keep_checkpoints_num)
        self.rewind_pending = False  # restarted from an earlier point: rewind at its first new result
        self._recorder: Recorder | None = None
        self._metric, self._mode, self._keep = metric, mode, keep_checkpoints_num
        self._changed, self._callbacks = changed, callbacks
        self._recording = recording  # the executor's, chosen once by the loop
        self._writer = writer  # batched and consolidated: the thread that writes the files

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            with self._writing(""):
                self._recorder = self._recording.recorder(self.trial.path, self._writer)
        return self._recorder

    def write_params(self, config: dict[str, Any]) -> None:
        with self._writing(PARAMS_FILE):
            self.recorder.write_params(config)

    def open_results(self) -> None:
        """Make the trial's result file now (called once its worker has the trial: the file is
        made while the worker starts it). Best effort: a failed write never raises here, it fails
        again at the trial's first record(), which reports it (the trial's failure, or a full
        disk)."""
        try:
            self.recorder.open_results()
        except (OSError, TrialStorageError):  # the recorder's own making raises the latter
            pass

    def flush(self) -> None:
        if self._recorder is not None:
            with self._writing(PROGRESS_FILE):
                self._recorder.flush()

    def close(self) -> None:
        """Close the trial's files; never raises (what could not be flushed is logged)."""
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            try:
                recorder.close()
            except OSError as exc:
                logger.warning("trial %s: could not flush its files on close: %s", self.trial.trial_id, exc)

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Turn an OSError writing `name` in the trial's directory into StorageFull or TrialStorageError."""
        try:
            yield
        except OSError as exc:
            raise self._storage_error(exc, name) from exc

    def _storage_error(self, exc: OSError, name: str) -> Exception:
        path = os.fsdecode(exc.filename) if exc.filename else os.path.join(self.trial.path, name)
        if is_disk_full(exc):
            return StorageFull(path, os.path.dirname(self.trial.path))
        return TrialStorageError(path, exc)

    # Transitions ----------------------------------------------------------------------------------

    def start(self, placement: Placement, now: float) -> None:
        self._expect("start", Status.PENDING, Status.PAUSED)
        trial = self.trial
        trial.status, trial.placement = Status.RUNNING, placement
        self.run, self.stop_requested, self.pause_requested = None, False, False
        self.killing, self.memory_error, self.write_error, self.overdue = False, None, None, None
        if trial.start_time is None:
            trial.start_time = now
        # What it reported after its restore point comes again; until then (if it fails first,
        # or the experiment ends) those results stay where they are, counted, in result.jsonl.
        # An executor may restart it from an older checkpoint than its restore point (the newer
        # one's copy was lost with its host): the first result says where it really restarted.
        self.rewind_pending = trial.iteration > 0
        self._changed(trial)

    def paused(self) -> tuple[dict[str, Any] | None, str | None] | None:
        """The worker paused it; returns a resume that was asked for meanwhile, if any."""
        self._expect("pause", Status.RUNNING)
        self.trial.status = Status.PAUSED
        self._set_restore_point(self.trial.checkpoint)
        self._changed(self.trial)
        request, self.resume_request = self.resume_request, None
        return request

    def request_resume(self, config: dict[str, Any] | None, checkpoint: str | None) -> None:
        """A resume asked for while it runs (its pause is on the way), done once the pause lands.
        Another trial's checkpoint is copied now: its owner may remove it (keep_checkpoints_num)
        before then."""
        self.resume_request = (config, self._own_copy(checkpoint))

    def resume(self, config: dict[str, Any] | None, checkpoint: str | None) -> None:
        self._expect("resume", Status.PAUSED)
        trial = self.trial
        if config is not None:
            trial.config = config
            self.write_params(config)
        if checkpoint is not None:
            self._adopt(self._own_copy(checkpoint))
        self._set_restore_point(trial.checkpoint)
        trial.status = Status.PENDING
        self._changed(trial)

    def retry(self) -> None:
        """It failed and will run again from its newest checkpoint."""
        self._expect("retry", Status.RUNNING)
        self._set_restore_point(self.trial.checkpoint)
        self.trial.status = Status.PENDING
        self._changed(self.trial, event="retry")

    def interrupted(self) -> None:
        """The experiment ends without it having ended: a resume restarts it from its checkpoint."""
        self._expect("interrupt", Status.RUNNING)
        self._set_restore_point(self.trial.checkpoint)
        self.trial.status = Status.PENDING
        self._changed(self.trial, event="interrupted")

    def finish(self, now: float, *, killed: bool = False, early: bool = False) -> None:
        """It ended: EARLY_STOPPED if the scheduler stopped it before its end (`early`) or it was
        paused and never resumed, else FINISHED."""
        self._expect("finish", Status.PENDING, Status.RUNNING, Status.PAUSED)
        if killed:  # it stands where its newest checkpoint is
            self._set_restore_point(self.trial.checkpoint)
        early = early or self.trial.status is Status.PAUSED
        self.trial.status, self.trial.end_time = Status.EARLY_STOPPED if early else Status.FINISHED, now
        self._changed(self.trial)

    def failed(self, error: str, trace: str) -> None:
        """Count a failure and keep its traceback; retry() or fail() follows."""
        trial = self.trial
        trial.num_failures += 1
        trial.error, trial.error_traceback = error, trace
        try:  # the failure may be that its directory cannot be written: it is in the journal anyway
            with self._writing(ERROR_FILE):
                self.recorder.write_error(trial.num_failures, error, trace)
        except (TrialStorageError, StorageFull) as exc:
            logger.debug("trial %s: %s", trial.trial_id, exc)

    def fail(self, now: float) -> None:
        self._expect("fail", Status.RUNNING, Status.PENDING, Status.PAUSED)
        self.trial.status, self.trial.end_time = Status.ERROR, now
        self._changed(self.trial)

    def ended(self) -> None:
        """The attempt's task ended, however: drop what belonged to that attempt (its place
        too: a study of 100,000 trials should not keep 100,000 of them)."""
        self.trial.placement = None
        self.run, self.stop_requested, self.pause_requested = None, False, False
        self.killing, self.memory_error, self.write_error, self.overdue = False, None, None, None
        if self.trial.status is not Status.PAUSED:
            self.resume_request = None

    def _expect(self, transition: str, *sources: Status) -> None:
        if self.trial.status not in sources:  # an internal invariant: a bug in the controller
            raise RuntimeError(f"{self.trial.trial_id}: cannot {transition} from {self.trial.status.value}")

    # Results and checkpoints ------------------------------------------------------------------------

    def record(self, event: ResultEvent) -> dict[str, Any]:
        """A result arrived: on disk before anyone decides anything, or even looks at its values
        (update_best). Raises TrialStorageError or StorageFull, and then the trial is as before."""
        result, trial = event.result, self.trial
        if self.rewind_pending:  # its first result since a restart: the old ones after it go now
            self.rewind_pending = False
            restarted_at = int(result.get("training_iteration", trial.restore_iteration + 1)) - 1
            trial.restore_iteration = min(trial.restore_iteration, restarted_at)
            if trial.iteration > trial.restore_iteration:
                self._rewind()
        try:  # not `with self._writing(...)`: this is the hot path, and a try costs nothing
            self.recorder.record(result)
        except OSError as exc:
            raise self._storage_error(exc, RESULT_FILE) from exc
        trial.last_result = result
        trial.num_results += 1
        trial.update_best(self._metric, self._mode, result)
        if event.checkpoint is not None:
            self.checkpointed(event.checkpoint, int(result.get("training_iteration", 0)),
                              float(result.get("time_total_s", 0.0)))
        return result

    def checkpointed(self, checkpoint: str, iteration: int, time_total: float) -> None:
        """A checkpoint came with a result; with keep_checkpoints_num, the oldest kept ones go."""
        previous = self.trial.checkpoint
        self._set_checkpoint(checkpoint, iteration, time_total)
        self._superseded(previous, checkpoint)

    def _superseded(self, previous: str | None, newest: str) -> None:
        """`newest` replaced `previous` as the trial's checkpoint: with keep_checkpoints_num the
        oldest kept ones go (also a checkpoint a clone replaced, which nothing restores any more)."""
        if self._keep is not None and previous is not None and previous != newest:
            self.kept_checkpoints.append(previous)
            while len(self.kept_checkpoints) >= self._keep:
                remove_checkpoint(self.kept_checkpoints.pop(0))

    def final_checkpoint(self, checkpoint: str | None) -> None:
        """The checkpoint a trial wrote as it ended (pause or checkpoint_at_end); none is removed."""
        if checkpoint is not None and checkpoint != self.trial.checkpoint:
            meta = read_checkpoint_meta(checkpoint)
            self._set_checkpoint(checkpoint, int(meta.get("iteration", self.trial.iteration)),
                                 float(meta.get("time_total_s", 0.0)))

    def _set_checkpoint(self, checkpoint: str, iteration: int, time_total: float) -> None:
        trial = self.trial
        trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_total = checkpoint, iteration, time_total
        self._callbacks.on_checkpoint(trial, checkpoint)

    def mutate(self, mutate: Mutate) -> Mutate:
        """Take the new config; copy a donor's checkpoint here, so the donor may delete its own."""
        checkpoint = self._own_copy(mutate.checkpoint)
        self.trial.config = mutate.config
        self.write_params(mutate.config)
        if checkpoint is not None:
            self._adopt(checkpoint)
        self._changed(self.trial, event="mutated")
        return Mutate(mutate.config, checkpoint)

    def _adopt(self, checkpoint: str) -> None:
        """A clone of another trial's checkpoint becomes this trial's newest: a retry, a pause or
        an exploit of this trial starts from it, not from the weights the clone replaced."""
        meta = read_checkpoint_meta(checkpoint)
        trial = self.trial
        previous, trial.checkpoint = trial.checkpoint, checkpoint
        trial.checkpoint_iteration = int(meta.get("iteration", trial.checkpoint_iteration))
        trial.checkpoint_time_total = float(meta.get("time_total_s", trial.checkpoint_time_total))
        self._superseded(previous, checkpoint)

    def _own_copy(self, checkpoint: str | None) -> str | None:
        if checkpoint is None or _inside(checkpoint, self.trial.path):
            return checkpoint
        label = clone_name(self.trial.num_results)
        with self._writing(label):
            return copy_checkpoint(checkpoint, self.trial.path, label)

    def _set_restore_point(self, checkpoint: str | None) -> None:
        trial = self.trial
        trial.restore_checkpoint = checkpoint
        if checkpoint is None:
            trial.restore_iteration, trial.restore_time_total = 0, 0.0
            return
        meta = read_checkpoint_meta(checkpoint)
        trial.restore_iteration = int(meta.get("iteration", trial.checkpoint_iteration))
        trial.restore_time_total = float(meta.get("time_total_s", trial.checkpoint_time_total))

    def _rewind(self) -> None:
        """The trial restarts from an earlier checkpoint: the results after it will come again."""
        trial = self.trial
        with self._writing(RESULT_FILE):
            kept = self.recorder.rewind(trial.restore_iteration)
        trial.last_result = kept[-1] if kept else None
        trial.num_results = len(kept)
        trial.metric_best = None
        for result in kept:
            trial.update_best(self._metric, self._mode, result)


def _inside(path: str, directory: str) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(directory) + os.sep)
