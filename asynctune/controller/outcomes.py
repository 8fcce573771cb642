"""What follows when a trial ends, fails, pauses or is resumed: one place, one order.

`TrialOutcomes` makes the trial's transition on its `TrialRuntime` (controller/runtime.py), then tells
everyone who must hear of it, in this order: the scheduler, the searcher (searcher_driver.py), the
callbacks; it closes the trial's files and applies the actions those hooks queued (actions.py).
A trial that will run again (a retry, a resume, a pause) goes back among the waiting trials.
The controller and every trial's task (driver.py) call it; it calls neither.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .actions import TrialActions
from ..algorithms.base import Scheduler
from .runtime import TrialRuntime, TrialStorageError
from .ending import Ending
from ..errors import StorageFull, TrialFailed
from ..reporting.callback import CallbackList
from ..reporting.decisions import stopped_early
from .searcher_driver import SearcherDriver
from ..core.trial import Status, Trial
from .table import TrialTable
from ..store.names import error_file
from ..store.vanished import DirectoryVanished

logger = logging.getLogger(__name__)


class TrialOutcomes:
    """Ends, fails, retries, pauses and resumes trials, and applies the scheduler's actions."""

    def __init__(self, *, scheduler: Scheduler, searching: SearcherDriver, callbacks: CallbackList,
                 actions: TrialActions, ending: Ending, table: TrialTable, now: Callable[[], float],
                 kill: Callable[[TrialRuntime], None], wakeup: asyncio.Event, max_failures: int,
                 fail_fast: bool, experiment_gone: Callable[[], DirectoryVanished | None] = lambda: None) -> None:
        self._scheduler, self._searching, self._callbacks = scheduler, searching, callbacks
        self._actions, self._ending, self._table = actions, ending, table
        self._now, self._kill, self._wakeup = now, kill, wakeup
        self._max_failures, self._fail_fast = max_failures, fail_fast
        self._experiment_gone = experiment_gone
        self._stopped_early: set[Trial] = set()  # the scheduler stopped them before their end: "pruned"

    def apply_actions(self) -> None:
        """Apply what the scheduler queued (called after each of its hooks, and as the loop wakes)."""
        if self._actions:
            self._actions.apply(self._table.runtime, finish=self._finish_waiting, resume=self.resume,
                                request_resume=self._request_resume)

    def stopping(self, trial: Trial) -> None:
        """The scheduler stopped this trial: when that was before its `max_t`, the searcher hears
        it was pruned (on_trial_pruned), not that it completed."""
        if stopped_early(self._scheduler, trial, "STOP"):
            self._stopped_early.add(trial)

    def complete(self, runtime: TrialRuntime, *, killed: bool = False) -> None:
        """It ended well (FINISHED) or was stopped (EARLY_STOPPED), and everyone is told."""
        trial = runtime.trial
        pruned = trial in self._stopped_early
        self._stopped_early.discard(trial)
        runtime.finish(self._now(), killed=killed, early=pruned)
        self._scheduler.on_trial_complete(trial, trial.last_result)
        self._searching.ended(trial.trial_id, trial.last_result, False, pruned=pruned)
        self._callbacks.on_trial_complete(trial)
        runtime.close()
        self.apply_actions()

    def failed(self, runtime: TrialRuntime, error: str, trace: str) -> None:
        """Its attempt failed: it runs again from its newest checkpoint while max_failures allows."""
        trial, max_failures = runtime.trial, self._max_failures
        if (gone := self._experiment_gone()) is not None:  # its files went with the directory: not its failure
            runtime.interrupted()
            return self._ending.vanished(gone)
        self._stopped_early.discard(trial)  # a retry runs on: the stop decided before the failure is void
        runtime.failed(error, trace)
        if self._ending.why is None and (max_failures < 0 or trial.num_failures <= max_failures):
            host = trial.placement.host if trial.placement is not None else "?"
            logger.warning("trial %s failed on host %s (%s); retry %d of %s from checkpoint %s", trial.trial_id, host,
                           error, trial.num_failures, "unlimited" if max_failures < 0 else max_failures,
                           trial.checkpoint or "none (from scratch)")
            runtime.retry()
            self._table.wait(trial)
            return
        self._end_in_error(runtime, error, trace)

    def failed_for_good(self, runtime: TrialRuntime, error: str, trace: str) -> None:
        """It cannot run at all (its directory cannot be written): ERROR now, no retry."""
        runtime.failed(error, trace)
        self._end_in_error(runtime, error, trace)

    def not_started(self, runtime: TrialRuntime, exc: TrialStorageError | StorageFull) -> None:
        """Its start failed (rewinding its results): on a full disk, or with the experiment's
        directory gone, it waits for a resume; else it fails."""
        gone = None if isinstance(exc, StorageFull) else self._experiment_gone()
        if isinstance(exc, StorageFull) or gone is not None:
            runtime.interrupted()
            self._table.wait(runtime.trial)
            if gone is not None:
                self._ending.vanished(gone)
            else:
                self._ending.disk_full(exc)
        else:
            self.failed_for_good(runtime, str(exc), "")

    def write_failed(self, runtime: TrialRuntime, exc: TrialStorageError | StorageFull) -> None:
        """A write into a trial's directory failed. A full disk stops the experiment, resumable;
        any other error is that trial's failure alone: a running trial is killed and fails (or is
        retried) when its worker is gone, a waiting one fails now. Never raises."""
        if isinstance(exc, StorageFull):
            return self._ending.disk_full(exc)
        if (gone := self._experiment_gone()) is not None:  # not the trial's failure: the whole directory went
            return self._ending.vanished(gone)
        if isinstance(exc.__cause__, DirectoryVanished):  # not this trial's fault alone: the experiment ends
            self._ending.stop(exc.__cause__, str(exc.__cause__))
        trial = runtime.trial
        if trial.status is Status.RUNNING:
            if runtime.write_error is None:
                runtime.write_error = str(exc)
                if runtime.run is not None:
                    self._kill(runtime)
        elif trial.status in (Status.PENDING, Status.PAUSED):
            self._table.unwait(trial)
            self.failed_for_good(runtime, str(exc), "")

    def paused(self, runtime: TrialRuntime) -> None:
        """Its worker paused it: it waits, unless a resume was asked for while the pause was on its way."""
        if (request := runtime.paused()) is not None:
            self.resume(runtime, *request)
        else:
            self._table.wait(runtime.trial)
            self._searching.paused(runtime.trial.trial_id)  # it holds no worker now (ConcurrencyLimiter)

    def resume(self, runtime: TrialRuntime, config: dict[str, Any] | None, checkpoint: str | None) -> None:
        try:
            runtime.resume(config, checkpoint)
        except (TrialStorageError, StorageFull) as exc:
            return self.write_failed(runtime, exc)
        self._table.wait(runtime.trial)
        self._searching.resumed(runtime.trial.trial_id)
        if config is not None:  # resumed as another trial's clone with a new config (PBT's exploit while paused)
            self._callbacks.on_trial_decision(runtime.trial, "MUTATE", f"config={config}")
        else:
            self._callbacks.on_trial_decision(runtime.trial, "RESUME")
        self._wakeup.set()  # a worker may be free for it now

    def _request_resume(self, runtime: TrialRuntime, config: dict[str, Any] | None, checkpoint: str | None) -> None:
        """A resume for a running trial whose pause is on the way (PBT's exploit while others wait)."""
        try:
            runtime.request_resume(config, checkpoint)
        except (TrialStorageError, StorageFull) as exc:
            self.write_failed(runtime, exc)

    def _finish_waiting(self, runtime: TrialRuntime) -> None:
        self._table.unwait(runtime.trial)
        self.stopping(runtime.trial)  # a paused (or pending) trial the scheduler ends for good
        self._callbacks.on_trial_decision(runtime.trial, "STOP")  # decisions.jsonl, console: it was stopped
        self.complete(runtime)

    def _end_in_error(self, runtime: TrialRuntime, error: str, trace: str) -> None:
        trial = runtime.trial
        runtime.fail(self._now())
        logger.warning("trial %s failed: %s (traceback in %s)", trial.trial_id, error,
                       error_file(trial.path))
        self._scheduler.on_trial_error(trial)
        self._searching.ended(trial.trial_id, trial.last_result, True)
        self._callbacks.on_trial_error(trial)
        runtime.close()
        if self._fail_fast and self._ending.fatal is None:
            self._ending.stop(TrialFailed(trial.trial_id, error, trace), f"fail_fast: trial {trial.trial_id} failed")
        self.apply_actions()
