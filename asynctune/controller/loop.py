"""The one event loop of an experiment: suggest -> choose -> place -> start -> results -> decide.

The loop adds trials from the searcher, starts the ones the scheduler chooses where the
resource pool has room, and sleeps until something changes. Every attempt that starts has one
task in the controller's TaskGroup, which owns it: `TrialDriver` (driver.py) reads the
attempt's events and turns each into the trial's transitions; `TrialOutcomes` (outcomes.py)
ends, fails, retries and resumes trials and applies the actions schedulers queue (actions.py);
`Ending` (ending.py) holds why the experiment ends early. State goes to disk through
`StateWriter` (store/state.py). Nothing outlives `Controller.run()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from ..core.compat import BaseExceptionGroup, TaskGroup, TimeoutErrors, timeout
from .actions import TrialActions
from ..algorithms.base import FINISHED, Scheduler, Searcher, resolve
from .runtime import TrialRuntime, TrialStorageError
from .ending import Ending
from ..errors import ResultsNotWritten, StorageFull
from ..executors.base import Executor
from .metric_check import MetricCheck
from ..options import ExperimentSpec
from .outcomes import TrialOutcomes
from .replay import replay_history
from ..reporting.callback import CallbackList
from ..core.resources import Placement, Resources, ResourcePool, resolve_resources
from .searcher_driver import SearcherDriver
from ..core.space import Space
from ..store.state import StateWriter, experiment_snapshot
from ..store.layout import RESULT_FILE
from ..store.recording_policy import policy_of
from ..store.lock import DriverLock
from ..store.vanished import DirectoryVanished, ExperimentWatch, missing_results
from ..core.stopper import Stopper, ThresholdStopper
from ..core.trial import Status, Trial
from .driver import TrialDriver
from .table import TrialTable
from .trial_monitoring import trial_monitor

logger = logging.getLogger(__name__)

_TICK_INTERVAL_S = 0.5
_RETRY_SUGGEST_S = 0.05
# A searcher that says "not now" this long while nothing runs is named in a warning: the
# experiment can only wait for it (a searcher with no more configs returns FINISHED).
_STALLED_WARNING_S = 30.0


class Controller:
    """Runs one experiment to its end. Built by `asynctune.run`; see there for the arguments."""

    def __init__(self, *, spec: ExperimentSpec, trainable_blob: bytes, trainable_key: str, space: Space,
                 searcher: Searcher, scheduler: Scheduler, executor: Executor, stopper: Stopper | None,
                 callbacks: CallbackList, trials: Sequence[Trial] = (), time_used_s: float = 0.0) -> None:
        self.spec, self.options = spec, spec.options
        self.space, self.searcher, self.scheduler = space, searcher, scheduler
        self.executor, self.stopper, self.callbacks = executor, stopper, callbacks
        self.table = TrialTable(trials, self._new_runtime)
        self.trials = self.table.trials  # the same list: callbacks and the analysis read it
        self._wakeup = asyncio.Event()
        self.actions = TrialActions(self.trials, self._wakeup)  # the scheduler's TrialControl
        self._searcher_done = self._searcher_finished_told = False
        self._waiting_on_searcher_since: float | None = None  # "not now" with nothing running, since
        self._warned_waiting_on_searcher = False
        stop_keys = stopper.thresholds if isinstance(stopper, ThresholdStopper) else ()
        self._metric_check = MetricCheck(self.options.metric, scheduler, searcher, stop_keys=stop_keys)
        self._max_trials: int | None = None
        self._ending = Ending(spec.experiment_dir, self._wakeup)
        self._watch = ExperimentWatch(spec.experiment_dir)  # deleted or moved under the run: it ends
        self._pool: ResourcePool | None = None
        self._max_running = 1
        self._recording = policy_of(executor)  # chosen once (store/recording_policy.py)
        self.state = StateWriter(spec.experiment_dir, self._snapshot, on_full=self._ending.disk_full,
                                 batched=self._recording.batched, journal=self._recording.journal, watch=self._watch)
        self._writer = self._recording.writer(spec.experiment_dir)
        self._searching = SearcherDriver(searcher, self.state.save_searcher)
        self._outcomes = TrialOutcomes(
            scheduler=scheduler, searching=self._searching, callbacks=callbacks, actions=self.actions,
            ending=self._ending, table=self.table, now=executor.now, kill=self._kill,
            wakeup=self._wakeup, max_failures=self.options.max_failures, fail_fast=self.options.fail_fast,
            experiment_gone=self._watch.vanished)
        self._driver = TrialDriver(
            spec=spec, trainable_key=trainable_key, trainable_blob=trainable_blob, executor=executor,
            scheduler=scheduler, stopper=stopper, callbacks=callbacks, searching=self._searching,
            metric_check=self._metric_check, outcomes=self._outcomes, ending=self._ending,
            budget_spent=self._budget_spent, kill=self._kill)
        self.resumed = bool(self.trials)
        self.time_used_s = time_used_s  # spent by earlier sessions of a resumed experiment
        self.start_time = time.time()  # on the executor's clock once it runs (virtual for a simulation)
        self.started_at = self.start_time  # on the wall clock: when, for people (`asynctune ls`)
        self._deadline: float | None = None
        self.status = "RUNNING"
        self.driver_lock: DriverLock | None = None  # held by run()/resume() for the driver's life

    @property
    def foreign_reports(self) -> set[str]:
        """Other libraries' report functions imported by trials that returned without a result."""
        return self._driver.foreign_reports

    @property
    def returned_instead(self) -> str | None:
        """What a trial that returned without a result returned (a dict, a float), if anything."""
        return self._driver.returned_instead

    @property
    def stopping(self) -> str | None:
        """Why the experiment is ending early (None while it is not)."""
        return self._ending.why

    # The experiment ------------------------------------------------------------------------------

    async def run(self) -> list[Trial]:
        try:
            await self.executor.start()
            self.start_time = self.executor.now()
            budget = self.options.time_budget_s
            self._deadline = self.start_time + max(0.0, budget - self.time_used_s) if budget else None
            self._pool = ResourcePool(self.executor.inventories())
            self.executor.watch_hosts(self._hosts_changed)
            self._max_running = self._pool.max_running(self.options.resources_per_trial,
                                                       self.options.max_concurrent_trials)
            self._searching.open()
            self._max_trials = self.searcher.max_trials(self.options.num_samples)
            self.state.open()
            self.callbacks.on_experiment_start(self.spec.experiment_dir, self.trials)
            await self.scheduler.start(self.actions)
            if self.resumed:
                await replay_history(self.scheduler, self.trials, self.stopper)
                self.actions.clear()  # what happened is on disk: replayed decisions change nothing
                if self.stopper is not None and self.stopper.stop_all():  # it ended the experiment before
                    self._ending.stop(None, "the stopper ended the experiment")
                self._metric_check.seen_before(self.trials)
            async with TaskGroup() as tasks:
                self._tasks = tasks
                services = [tasks.create_task(self.state.save_periodically(), name="asynctune-save"),
                            tasks.create_task(self._tick_periodically(), name="asynctune-tick")]
                if self.spec.monitor_interval_s:
                    monitor = trial_monitor(self.table, interval_s=self.spec.monitor_interval_s,
                                            memory_limit_mb=self.options.memory_limit_mb, kill=self._kill)
                    services.append(tasks.create_task(monitor.run(), name="asynctune-monitor"))
                try:
                    await self._main_loop()
                except StorageFull as exc:  # raised where no trial is at fault (the reserve, a new trial's start)
                    self._ending.disk_full(exc)
                except BaseException:
                    self._ending.interrupted = True  # Ctrl-C, SIGTERM, cancellation or a bug: keep trials resumable
                    raise
                finally:
                    if self.table.num_running:
                        await self._kill_all()
                    for service in services:
                        service.cancel()
            self._check_vanished()
            self.status = "ERROR" if self._ending.fatal else ("STOPPED" if self.stopping else "FINISHED")
        except BaseException as exc:
            self.status = "INTERRUPTED"
            lone = _lone_error(exc)
            if lone is not exc:  # a bug in a searcher or a sample_from: the user's error, not the TaskGroup's
                raise lone from None
            raise
        finally:
            await self._shutdown()
        if self._ending.fatal is not None:
            raise self._ending.fatal
        return self.trials

    async def _main_loop(self) -> None:
        while True:
            self._wakeup.clear()
            self._outcomes.apply_actions()
            await self._start_ready_trials()
            if self.stopping is None and self._budget_spent():
                self._ending.why = f"time_budget_s={self.options.time_budget_s} spent"
            if self.stopping is not None or self._is_done():
                return
            real_deadline = None if self.executor.virtual_time or self._deadline is None else self._deadline
            self.executor.controller_idle(True)
            try:
                if real_deadline is None:
                    await self._wakeup.wait()
                    continue
                async with timeout(max(0.0, real_deadline - time.time())):
                    await self._wakeup.wait()
            except TimeoutErrors:
                self._ending.why = f"time_budget_s={self.options.time_budget_s} spent"
                logger.info("stopping: %s", self.stopping)
                return
            finally:
                self.executor.controller_idle(False)

    def _budget_spent(self) -> bool:
        return self._deadline is not None and self.executor.now() >= self._deadline

    def _is_done(self) -> bool:
        if self.table.num_running or self.actions or not self._searcher_exhausted():
            return False
        return not self.table.any_waiting or self.scheduler.choose_trial_to_run(self.table.candidates()) is None

    def _searcher_exhausted(self) -> bool:
        return self._searcher_done or (self._max_trials is not None and len(self.trials) >= self._max_trials)

    def _hosts_changed(self) -> None:
        """A host went down, came back or joined late (its inventory is new to the pool)."""
        if self._pool is not None:
            joined = [self._pool.add_host(h) for h in self.executor.inventories()]
            if any(joined):
                self._max_running = self._pool.max_running(self.options.resources_per_trial,
                                                           self.options.max_concurrent_trials)
        self._wakeup.set()

    async def _start_ready_trials(self) -> None:
        while self.stopping is None and self.table.num_running < self._max_running:
            added = len(self.trials)
            if not self.table.waiting_fresh():
                await self._add_trial()  # none waits that never ran (resumed ones do not hold new trials back)
            candidates = self.table.candidates()
            trial = self.scheduler.choose_trial_to_run(candidates) if candidates else None
            if trial is None:
                if len(self.trials) > added and not candidates and not self.table.num_running:
                    # The trial added failed at once (its directory cannot be made) and no trial
                    # runs whose end would wake the loop: add the next soon.
                    asyncio.get_running_loop().call_later(_RETRY_SUGGEST_S, self._wakeup.set)
                return
            assert self._pool is not None
            placement = self._pool.acquire(Resources.parse(trial.resources), usable=self.executor.host_available)
            if placement is None:
                return  # wait until a running trial frees its resources (a down SSH host is left out)
            if (gone := self._watch.vanished()) is not None:  # moved away since the tick: its worker
                self._pool.release(placement)  # would make the trial's directory, and all above it, again
                self._ending.vanished(gone)
                return
            runtime = self.table.start(trial)
            try:
                runtime.start(placement, self.executor.now())
            except (TrialStorageError, StorageFull) as exc:  # rewinding its results failed: it cannot run
                self.table.stopped_running(trial)
                self._pool.release(placement)
                self._outcomes.not_started(runtime, exc)
                runtime.ended()
                continue
            self._tasks.create_task(self._run_trial(runtime, placement), name=f"trial-{trial.trial_id}")

    async def _add_trial(self) -> None:
        if self._searcher_exhausted():
            return await self._searcher_finished()
        index = len(self.trials)
        trial_id = f"trial_{index:05d}"
        config = await self._searching.suggest(trial_id)
        if config is FINISHED:
            self._searcher_done = True
            return await self._searcher_finished()
        if config is None:  # "not now": ask again soon, or when a trial ends
            if not self.table.num_running:
                if self._stalled():
                    await resolve(self.scheduler.on_searcher_stalled())
                    self._outcomes.apply_actions()
                self._note_waiting_on_searcher()
                asyncio.get_running_loop().call_later(_RETRY_SUGGEST_S, self._wakeup.set)
            return
        self._waiting_on_searcher_since = None
        try:  # resources_per_trial as a function of the config: known only now
            resources = resolve_resources(self.options.resources_per_trial, config)
            if self._pool is not None:
                self._pool.check(resources)
        except ValueError as exc:  # end with this one error, as run() raises a fixed request's, not a TaskGroup's
            self._ending.stop(exc, f"{trial_id}'s resources_per_trial cannot run")
            return
        trial = Trial(trial_id=trial_id, config=config, index=index, resources=resources.as_dict(),
                      path=os.path.join(self.spec.experiment_dir, trial_id))
        if self.state.saved is None:
            # experiment.json before the first trial's files: a driver killed as it adds its first
            # trials leaves an experiment that `ls`, `show` and `resume` know (not FAILED AT START).
            self.state.save()
        runtime = self.table.runtime(trial)
        try:
            runtime.write_params(config)
        except (TrialStorageError, StorageFull) as exc:
            unwritable: TrialStorageError | StorageFull | None = exc
        else:
            unwritable = None
        self.table.add(trial)
        self.state.changed(trial, event="added")
        self._searching.added()
        try:
            self.scheduler.on_trial_add(trial)
        except ValueError as exc:  # it cannot take this config (PBT: a mutated key missing): end, as one error
            self._ending.stop(exc, f"{type(self.scheduler).__name__} refused {trial_id}")
            return
        if unwritable is not None:  # its directory cannot be made: it fails (or, disk full, stays PENDING)
            self._outcomes.write_failed(runtime, unwritable)
        self._outcomes.apply_actions()
        if self._searcher_exhausted():  # that was the last one: say so now, not when a worker frees up
            await self._searcher_finished()

    def _note_waiting_on_searcher(self) -> None:
        """Warn once when the searcher has said "not now" for long with no trial running."""
        now = time.monotonic()
        if self._waiting_on_searcher_since is None or self.table.num_running:
            self._waiting_on_searcher_since = now
        elif not self._warned_waiting_on_searcher and now - self._waiting_on_searcher_since >= _STALLED_WARNING_S:
            self._warned_waiting_on_searcher = True
            logger.warning(
                "%s has answered suggest() with None ('not now') for %.0f s while no trial runs: the experiment "
                "waits for it. A searcher that has no more configs returns Searcher.FINISHED; one that waits for "
                "running trials gets none here (a ConcurrencyLimiter whose trials all ended, a custom searcher's "
                "own count of running trials gone wrong?)",
                type(self._searching.searcher).__name__, now - self._waiting_on_searcher_since)

    def _stalled(self) -> bool:
        """Nothing runs and no waiting trial may start: with a searcher that says "not now", only
        the scheduler can move on (HyperBand holding a bracket's paused trials, a limiter counting them)."""
        candidates = self.table.candidates()
        return not candidates or self.scheduler.choose_trial_to_run(candidates) is None

    async def _searcher_finished(self) -> None:
        """Tell the scheduler, once, that no trial will be added (FINISHED or num_samples reached)."""
        if not self._searcher_finished_told:
            self._searcher_finished_told = True
            await resolve(self.scheduler.on_searcher_finished())
            self._outcomes.apply_actions()

    # One trial -----------------------------------------------------------------------------------

    async def _run_trial(self, runtime: TrialRuntime, placement: Placement) -> None:
        """One attempt's task: the driver handles its events; its place is freed here, however it ends."""
        try:
            await self._driver.run(runtime, placement)
        finally:
            runtime.ended()
            self.table.stopped_running(runtime.trial)
            if self._pool is not None:
                self._pool.release(placement)
            self._wakeup.set()

    async def _kill_all(self) -> None:
        runs = [r for r in self.table.running() if r.run is not None]
        for runtime in runs:
            runtime.killing = True
        await asyncio.gather(*(runtime.run.kill() for runtime in runs), return_exceptions=True)  # type: ignore[union-attr]

    def _kill(self, runtime: TrialRuntime) -> None:
        assert runtime.run is not None
        self._tasks.create_task(runtime.run.kill(), name=f"kill-{runtime.trial.trial_id}")

    # Helpers -------------------------------------------------------------------------------------

    def _new_runtime(self, trial: Trial) -> TrialRuntime:
        return TrialRuntime(trial, metric=self.options.metric, mode=self.options.mode, changed=self.state.changed,
                            keep_checkpoints_num=self.options.keep_checkpoints_num, callbacks=self.callbacks,
                            recording=self._recording, writer=self._writer)

    def _snapshot(self) -> dict[str, Any]:
        return experiment_snapshot(
            spec=self.spec, status=self.status, started_at=self.started_at,
            time_used_s=self.time_used_s + (self.executor.now() - self.start_time), searcher=self.searcher,
            scheduler=self.scheduler, stopping=self.stopping, trials=self.trials)

    async def _tick_periodically(self) -> None:
        while True:
            await asyncio.sleep(_TICK_INTERVAL_S)
            if (gone := self._watch.vanished()) is not None:  # first: it names the experiment, not a trial
                self._ending.vanished(gone)
            for runtime in self.table.runtimes():
                try:
                    runtime.flush()
                except (TrialStorageError, StorageFull) as exc:
                    self._outcomes.write_failed(runtime, exc)
            if self._writer is not None:
                self._writer.hand_over()
                self._check_results_log()
            self.callbacks.on_tick(self.trials)

    def _check_vanished(self) -> None:
        """At the end: a trial whose results were deleted is no result (never the best), and the
        experiment ends with the error naming what disappeared."""
        gone = self._watch.vanished()
        # The experiment's own directory gone: its trials' results went with it (moved, they are
        # there, and the journal must not call them lost).
        lost = missing_results(self.trials, RESULT_FILE) if self._recording.writes_each_result and gone is None else []
        for trial in lost:
            trial.status, trial.error = Status.ERROR, f"its results were deleted ({trial.path})"
            self.state.changed(trial)
        if gone is None and lost:
            gone = DirectoryVanished(lost[0].path, "the trial directory")
        if gone is not None:
            self._ending.stop(gone, str(gone))

    def _check_results_log(self) -> None:
        """A consolidated simulation's results.jsonl could not be written: every trial's results go
        there, so the experiment ends, as an error (no one trial is at fault)."""
        log = self._writer.results if self._writer is not None else None
        if log is not None and log.failure is not None:
            self._ending.stop(ResultsNotWritten(log.path, log.failure), f"could not write {log.path}")

    async def _shutdown(self) -> None:
        async def close_all() -> None:
            try:
                await self.scheduler.close()
            finally:
                await self.executor.close()

        try:
            async with timeout(30):  # cleanup must not hang shutdown
                await close_all()
        finally:
            for runtime in self.table.runtimes():
                runtime.close()
            if self._writer is not None:
                self._writer.close()  # every trial's files written before the last save
                self._check_results_log()
                if self._ending.fatal is not None and self.status != "INTERRUPTED":
                    self.status = "ERROR"
            self.state.close()
            self._searching.close()
            if isinstance(self._ending.fatal, StorageFull):  # (the disk may have filled up during shutdown too)
                self.status = "INTERRUPTED"  # nothing failed: resume once there is room
            self.state.release_reserve()  # the room to save experiment.json when the disk is full
            if self.status != "INTERRUPTED" and self.stopping is None:
                for trial in self.trials:  # at a natural end, paused trials nobody resumed were stopped early
                    if trial.status in (Status.PAUSED, Status.PENDING):
                        trial.status = Status.EARLY_STOPPED
                        trial.end_time = trial.end_time or time.time()
            self.state.save()
            self.callbacks.on_experiment_end(self.trials)


def _lone_error(exc: BaseException) -> BaseException:
    """The one error inside (nested) exception groups of one member each, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
