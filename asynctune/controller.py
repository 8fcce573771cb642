"""The one event loop of an experiment: suggest -> choose -> place -> start -> results -> decide.

Every trial that runs has one task in the controller's TaskGroup, which owns it; the task
reads the trial's events and hands each to the trial's `TrialRuntime` (attempt.py), asks the
scheduler, settles the decision (decide.py) and answers the worker. Schedulers act on other
trials through `TrialActions` (actions.py), applied after each hook returns. State goes to
disk through `StateWriter` (state.py). Nothing outlives `Controller.run()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Sequence
from typing import Any

from ._compat import TaskGroup, TimeoutErrors, timeout
from .actions import TrialActions
from .algorithms.base import FINISHED, Scheduler, Searcher, resolve
from .attempt import TrialRuntime, TrialStorageError
from .decide import settle
from .errors import ExecutorLost, StorageFull, TrialFailed, names_disk_full
from .executors.base import DoneEvent, ErrorEvent, Executor, ResultEvent, WorkerLostEvent
from .executors.protocol import TrialRequest
from .metric_check import MetricCheck
from .options import ExperimentSpec
from .replay import replay_history
from .reporting.callback import CallbackList
from .resources import Placement, Resources, ResourcePool, resolve_resources
from .searching import SearcherDriver
from .space import Space
from .state import StateWriter, experiment_snapshot
from .stopper import Stopper
from .trial import CONTINUE, Decision, Mutate, Status, Trial
from .trial_monitor import trial_monitor

logger = logging.getLogger(__name__)

_TICK_INTERVAL_S = 0.5
_RETRY_SUGGEST_S = 0.05


class Controller:
    """Runs one experiment to its end. Built by `asynctune.run`; see there for the arguments."""

    def __init__(self, *, spec: ExperimentSpec, trainable_blob: bytes, trainable_key: str, space: Space,
                 searcher: Searcher, scheduler: Scheduler, executor: Executor, stopper: Stopper | None,
                 callbacks: CallbackList, trials: Sequence[Trial] = (), time_used_s: float = 0.0) -> None:
        self.spec, self.options = spec, spec.options
        self.trainable_blob, self.trainable_key = trainable_blob, trainable_key
        self.space, self.searcher, self.scheduler = space, searcher, scheduler
        self.executor, self.stopper, self.callbacks = executor, stopper, callbacks
        self.trials: list[Trial] = list(trials)
        self._runtimes: dict[Trial, TrialRuntime] = {}
        self._waiting: dict[Trial, None] = {t: None for t in self.trials if t.status in (Status.PENDING, Status.PAUSED)}
        self._running: dict[Trial, TrialRuntime] = {}
        self._wakeup = asyncio.Event()
        self.actions = TrialActions(self.trials, self._wakeup)  # the scheduler's TrialControl
        self._scheduler_name = type(scheduler).__name__
        self._searcher_done = self._searcher_finished_told = self._interrupted = False
        self._metric_check = MetricCheck(self.options.metric, scheduler, searcher)
        self._max_trials: int | None = None
        self.stopping: str | None = None  # why the experiment is ending early
        self._fatal: BaseException | None = None
        self._pool: ResourcePool | None = None
        self._max_running = 1
        self.state = StateWriter(spec.experiment_dir, lambda: experiment_snapshot(self), on_full=self._storage_full)
        self._searching = SearcherDriver(searcher, self.state.save_searcher)
        self.resumed = bool(self.trials)
        self.time_used_s = time_used_s  # spent by earlier sessions of a resumed experiment
        self.start_time = time.time()
        self._deadline: float | None = None
        self.status = "RUNNING"

    def _apply_actions(self) -> None:
        if self.actions:
            self.actions.apply(self._runtime, finish=self._finish_waiting, resume=self._resume)

    def _finish_waiting(self, runtime: TrialRuntime) -> None:
        self._waiting.pop(runtime.trial, None)
        self._complete(runtime)

    def _resume(self, runtime: TrialRuntime, config: dict[str, Any] | None, checkpoint: str | None) -> None:
        try:
            runtime.resume(config, checkpoint)
        except (TrialStorageError, StorageFull) as exc:
            return self._write_failed(runtime, exc)
        self._waiting[runtime.trial] = None
        self.callbacks.on_trial_decision(runtime.trial, "RESUME")
        self._wakeup.set()  # a worker may be free for it now

    # The experiment ------------------------------------------------------------------------------

    async def run(self) -> list[Trial]:
        try:
            await self.executor.start()
            self.start_time = self.executor.now()
            budget = self.options.time_budget_s
            self._deadline = self.start_time + max(0.0, budget - self.time_used_s) if budget else None
            self._pool = ResourcePool(self.executor.inventories())
            self.executor.watch_hosts(self._wakeup.set)
            self._max_running = self._pool.max_running(self.options.resources_per_trial,
                                                       self.options.max_concurrent_trials)
            self._searching.open()
            self._max_trials = self.searcher.max_trials(self.options.num_samples)
            self.state.open()
            self.callbacks.on_experiment_start(self.spec.experiment_dir, self.trials)
            await self.scheduler.start(self.actions)
            if self.resumed:
                await replay_history(self.scheduler, self.trials)
                self.actions.clear()  # what happened is on disk: replayed decisions change nothing
                self._metric_check.seen_before(self.trials)
            async with TaskGroup() as tasks:
                self._tasks = tasks
                services = [tasks.create_task(self.state.save_periodically(), name="asynctune-save"),
                            tasks.create_task(self._tick_periodically(), name="asynctune-tick")]
                if self.spec.monitor_interval_s:
                    monitor = trial_monitor(self._running, self.trials, interval_s=self.spec.monitor_interval_s,
                                            memory_limit_mb=self.options.memory_limit_mb, kill=self._kill)
                    services.append(tasks.create_task(monitor.run(), name="asynctune-monitor"))
                try:
                    await self._main_loop()
                except StorageFull as exc:  # raised where no trial is at fault (the reserve, a new trial's start)
                    self._storage_full(exc)
                except BaseException:
                    self._interrupted = True  # Ctrl-C, SIGTERM, cancellation or a bug: keep trials resumable
                    raise
                finally:
                    if self._running:
                        await self._kill_all()
                    for service in services:
                        service.cancel()
            self.status = "ERROR" if self._fatal else ("STOPPED" if self.stopping else "FINISHED")
        except BaseException:
            self.status = "INTERRUPTED"
            raise
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise self._fatal
        return self.trials

    async def _main_loop(self) -> None:
        while True:
            self._wakeup.clear()
            self._apply_actions()
            await self._start_ready_trials()
            if self.stopping is None and self._budget_spent():
                self.stopping = f"time_budget_s={self.options.time_budget_s} spent"
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
                self.stopping = f"time_budget_s={self.options.time_budget_s} spent"
                logger.info("stopping: %s", self.stopping)
                return
            finally:
                self.executor.controller_idle(False)

    def _budget_spent(self) -> bool:
        return self._deadline is not None and self.executor.now() >= self._deadline

    def _is_done(self) -> bool:
        if self._running or self.actions or not self._searcher_exhausted():
            return False
        return not self._waiting or self.scheduler.choose_trial_to_run(self._candidates()) is None

    def _searcher_exhausted(self) -> bool:
        return self._searcher_done or (self._max_trials is not None and len(self.trials) >= self._max_trials)

    async def _start_ready_trials(self) -> None:
        while self.stopping is None and len(self._running) < self._max_running:
            if not any(t.status is Status.PENDING for t in self._waiting):
                await self._add_trial()
            candidates = self._candidates()
            trial = self.scheduler.choose_trial_to_run(candidates) if candidates else None
            if trial is None:
                return
            assert self._pool is not None
            placement = self._pool.acquire(Resources.parse(trial.resources), usable=self.executor.host_available)
            if placement is None:
                return  # wait until a running trial frees its resources (a down SSH host is left out)
            self._waiting.pop(trial, None)
            runtime = self._running[trial] = self._runtime(trial)
            try:
                runtime.start(placement, self.executor.now())
            except (TrialStorageError, StorageFull) as exc:  # rewinding its results failed: it cannot run
                self._running.pop(trial)
                self._pool.release(placement)
                if isinstance(exc, StorageFull):
                    runtime.interrupted()
                    self._waiting[trial] = None
                    self._storage_full(exc)
                else:
                    runtime.failed(str(exc), "")
                    self._fail_for_good(runtime, str(exc), "")
                runtime.ended()
                continue
            self._tasks.create_task(self._run_trial(runtime, placement), name=f"trial-{trial.trial_id}")

    def _candidates(self) -> list[Trial]:
        return sorted(self._waiting, key=lambda t: t.index)

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
            if not self._running:
                asyncio.get_running_loop().call_later(_RETRY_SUGGEST_S, self._wakeup.set)
            return
        resources = resolve_resources(self.options.resources_per_trial, config)
        if self._pool is not None:
            self._pool.check(resources)
        trial = Trial(trial_id=trial_id, config=config, index=index, resources=resources.as_dict(),
                      path=os.path.join(self.spec.experiment_dir, trial_id))
        runtime = self._runtime(trial)
        try:
            runtime.write_params(config)
        except (TrialStorageError, StorageFull) as exc:
            unwritable: TrialStorageError | StorageFull | None = exc
        else:
            unwritable = None
        self.trials.append(trial)
        self._waiting[trial] = None
        self.state.changed(trial, event="added")
        self._searching.added()
        self.scheduler.on_trial_add(trial)
        if unwritable is not None:  # its directory cannot be made: it fails (or, disk full, stays PENDING)
            self._write_failed(runtime, unwritable)
        self._apply_actions()

    async def _searcher_finished(self) -> None:
        """Tell the scheduler, once, that no trial will be added (FINISHED or num_samples reached)."""
        if not self._searcher_finished_told:
            self._searcher_finished_told = True
            await resolve(self.scheduler.on_searcher_finished())
            self._apply_actions()

    # One trial -----------------------------------------------------------------------------------

    async def _run_trial(self, runtime: TrialRuntime, placement: Placement) -> None:
        trial, options = runtime.trial, self.options
        request = TrialRequest(
            trial_id=trial.trial_id, trial_dir=trial.path, config=trial.config, trainable_key=self.trainable_key,
            trainable_blob=self.trainable_blob, restore_checkpoint=trial.restore_checkpoint,
            start_iteration=trial.restore_iteration, start_time_total=trial.restore_time_total,
            checkpoint_frequency=options.checkpoint_frequency, checkpoint_at_end=options.checkpoint_at_end,
            placement=placement.as_dict(), experiment_dir=self.spec.experiment_dir)
        try:
            run = runtime.run = await self.executor.launch(request, placement)
            self.callbacks.on_trial_start(trial)
            if self.stopping is not None or runtime.write_error is not None:  # it ended while it was starting
                runtime.killing = runtime.write_error is None
                await run.kill()
            async for event in run.events():
                if isinstance(event, ResultEvent):
                    await self._on_result(runtime, event)
                elif isinstance(event, DoneEvent):
                    runtime.final_checkpoint(event.checkpoint)
                    if runtime.write_error is not None:  # it ended before the kill: still a failure
                        self._on_failure(runtime, runtime.write_error, "")
                    elif event.how != "paused":
                        self._complete(runtime)
                    elif (request_ := runtime.paused()) is not None:
                        self._resume(runtime, *request_)
                    else:
                        self._waiting[trial] = None
                elif isinstance(event, ErrorEvent):
                    if names_disk_full(event.error):  # no fault of the trial: stop, it stays resumable
                        runtime.interrupted()
                        self._storage_full(StorageFull(trial.path, self.spec.experiment_dir))
                    else:
                        self._on_failure(runtime, event.error, event.traceback)
                elif isinstance(event, WorkerLostEvent):
                    if runtime.memory_error is not None:
                        self._on_failure(runtime, str(runtime.memory_error), event.stderr_tail)
                    elif runtime.write_error is not None:
                        self._on_failure(runtime, runtime.write_error, "")
                    elif not runtime.killing:
                        self._on_failure(runtime, event.error, event.stderr_tail)
                    elif self._interrupted:  # not the trial's end: a resume restarts it from its checkpoint
                        runtime.interrupted()
                    else:
                        self._complete(runtime, killed=True)
        except ExecutorLost as exc:  # no trial can run any more: end the experiment, resumable
            self._interrupted = True  # trials still running are killed as resumable, not finished
            if trial.status is Status.RUNNING:
                runtime.interrupted()
            self._stop_experiment(ExecutorLost(f"{exc}; resume with asynctune.resume({self.spec.experiment_dir!r})"),
                                  str(exc))
        except Exception as exc:  # the executor could not run it: a failure of this trial only
            if trial.status is not Status.RUNNING:
                raise  # it had ended: a bug in a hook, not the trial's failure
            self._on_failure(runtime, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            runtime.ended()
            self._running.pop(trial, None)
            if self._pool is not None:
                self._pool.release(placement)
            self._wakeup.set()

    async def _on_result(self, runtime: TrialRuntime, event: ResultEvent) -> None:
        trial = runtime.trial
        if runtime.write_error is not None or isinstance(self._fatal, StorageFull):
            return  # it is being killed: its directory, or the disk, cannot take this result
        try:
            result = runtime.record(event)  # on disk before anyone decides anything
        except (TrialStorageError, StorageFull) as exc:
            return self._write_failed(runtime, exc)
        if (missing := self._metric_check.missing(trial, result)) is not None:  # a misspelt metric= ends it now
            self._stop_experiment(missing, f"metric not reported by {trial.trial_id}")
        if self._searching.sees_results:
            self._searching.result(trial.trial_id, result)
        self.callbacks.on_trial_result(trial, result)
        decision = self.scheduler.on_trial_result(trial, result)
        if decision.__class__ is not Decision:  # fast path first
            decision = await resolve(decision)
        self._apply_actions()
        stop = runtime.stop_requested
        if self.stopper is not None:
            stop = self.stopper(trial.trial_id, result) or stop
            if self.stopping is None and self.stopper.stop_all():
                self._stop_experiment(None, "the stopper ended the experiment")
        if self.stopping is None and self.executor.virtual_time and self._budget_spent():
            self._stop_experiment(None, f"time_budget_s={self.options.time_budget_s} spent")
        final = settle(decision, stop=stop or self.stopping is not None, pause=runtime.pause_requested,
                       owner=self._scheduler_name)
        if isinstance(final, Mutate):
            try:
                final = runtime.mutate(final)
            except (TrialStorageError, StorageFull) as exc:
                return self._write_failed(runtime, exc)
        assert runtime.run is not None
        runtime.run.decide(final)
        if decision is not CONTINUE:  # a stop criterion ending a trial is no news; a scheduler's decision is
            detail = "" if not isinstance(final, Mutate) else f"config={final.config}"
            self.callbacks.on_trial_decision(trial, "MUTATE" if isinstance(final, Mutate) else final.value, detail)

    def _complete(self, runtime: TrialRuntime, *, killed: bool = False) -> None:
        trial = runtime.trial
        runtime.finish(self.executor.now(), killed=killed)
        self.scheduler.on_trial_complete(trial, trial.last_result)
        self._searching.ended(trial.trial_id, trial.last_result, False)
        self.callbacks.on_trial_complete(trial)
        runtime.close()
        self._apply_actions()

    def _on_failure(self, runtime: TrialRuntime, error: str, trace: str) -> None:
        trial, max_failures = runtime.trial, self.options.max_failures
        runtime.failed(error, trace)
        if self.stopping is None and (max_failures < 0 or trial.num_failures <= max_failures):
            logger.info("trial %s failed (%s); retry %d from %s", trial.trial_id, error,
                        trial.num_failures, trial.checkpoint or "scratch")
            runtime.retry()
            self._waiting[trial] = None
            return
        self._fail_for_good(runtime, error, trace)

    def _fail_for_good(self, runtime: TrialRuntime, error: str, trace: str) -> None:
        trial = runtime.trial
        runtime.fail(self.executor.now())
        logger.warning("trial %s failed: %s (traceback in %s)", trial.trial_id, error,
                       os.path.join(trial.path, "error.txt"))
        self.scheduler.on_trial_error(trial)
        self._searching.ended(trial.trial_id, trial.last_result, True)
        self.callbacks.on_trial_error(trial)
        runtime.close()
        if self.options.fail_fast and self._fatal is None:
            self._stop_experiment(TrialFailed(trial.trial_id, error, trace), f"fail_fast: trial {trial.trial_id} failed")
        self._apply_actions()

    def _write_failed(self, runtime: TrialRuntime, exc: TrialStorageError | StorageFull) -> None:
        """A write into a trial's directory failed. A full disk stops the experiment, resumable;
        any other error is that trial's failure alone: a running trial is killed and fails (or is
        retried) when its worker is gone, a waiting one fails now. Never raises."""
        if isinstance(exc, StorageFull):
            return self._storage_full(exc)
        trial = runtime.trial
        if trial.status is Status.RUNNING:
            if runtime.write_error is None:
                runtime.write_error = str(exc)
                if runtime.run is not None:
                    self._kill(runtime)
        elif trial.status in (Status.PENDING, Status.PAUSED):
            self._waiting.pop(trial, None)
            runtime.failed(str(exc), "")
            self._fail_for_good(runtime, str(exc), "")

    def _storage_full(self, exc: StorageFull) -> None:
        """The disk is full: stop, keeping every unfinished trial resumable (none of them failed)."""
        if self._fatal is None:
            logger.warning("disk full writing %s: stopping the experiment", exc.path)
        self._interrupted = True
        self._stop_experiment(StorageFull(exc.path, self.spec.experiment_dir), f"no space left on device ({exc.path})")

    def _stop_experiment(self, fatal: BaseException | None, why: str) -> None:
        """End the experiment early: the first fatal error wins, else the first reason."""
        if fatal is not None:
            if self._fatal is not None:
                return
            self._fatal = fatal
        elif self.stopping is not None:
            return
        self.stopping = why
        self._wakeup.set()

    async def _kill_all(self) -> None:
        runs = [r for r in self._running.values() if r.run is not None]
        for runtime in runs:
            runtime.killing = True
        await asyncio.gather(*(runtime.run.kill() for runtime in runs), return_exceptions=True)  # type: ignore[union-attr]

    def _kill(self, runtime: TrialRuntime) -> None:
        assert runtime.run is not None
        self._tasks.create_task(runtime.run.kill(), name=f"kill-{runtime.trial.trial_id}")

    # Helpers -------------------------------------------------------------------------------------

    def _runtime(self, trial: Trial) -> TrialRuntime:
        runtime = self._runtimes.get(trial)
        if runtime is None:
            runtime = self._runtimes[trial] = TrialRuntime(
                trial, metric=self.options.metric, mode=self.options.mode, changed=self.state.changed,
                keep_checkpoints_num=self.options.keep_checkpoints_num, callbacks=self.callbacks)
        return runtime

    async def _tick_periodically(self) -> None:
        while True:
            await asyncio.sleep(_TICK_INTERVAL_S)
            for runtime in list(self._runtimes.values()):
                try:
                    runtime.flush()
                except (TrialStorageError, StorageFull) as exc:
                    self._write_failed(runtime, exc)
            self.callbacks.on_tick(self.trials)

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
            for runtime in self._runtimes.values():
                runtime.close()
            self.state.close()
            self._searching.close()
            if isinstance(self._fatal, StorageFull):  # (the disk may have filled up during shutdown too)
                self.status = "INTERRUPTED"  # nothing failed: resume once there is room
            self.state.release_reserve()  # the room to save experiment.json when the disk is full
            if self.status != "INTERRUPTED" and self.stopping is None:
                for trial in self.trials:  # at a natural end, paused trials nobody resumed are finished
                    if trial.status in (Status.PAUSED, Status.PENDING):
                        trial.status = Status.TERMINATED
                        trial.end_time = trial.end_time or time.time()
            self.state.save()
            self.callbacks.on_experiment_end(self.trials)
