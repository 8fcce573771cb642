"""The one event loop of an experiment: suggest -> choose -> place -> start -> results -> decide.

Every trial that runs has one task in the controller's TaskGroup, which owns it; the task
reads the trial's events, records each result before anything else, asks the scheduler, and
answers the worker. Nothing outlives `Controller.run()`: on success, error or cancellation
the TaskGroup ends every trial task and the executor ends every worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._compat import TaskGroup, TimeoutErrors, timeout
from .algorithms.base import FINISHED, Scheduler, Searcher
from .errors import AsynctuneError, ExecutorLost, TrialFailed
from .executors.base import DoneEvent, ErrorEvent, Executor, ResultEvent, TrialRun, WorkerLostEvent
from .executors.protocol import TrialRequest
from .monitor import MONITOR_FILE, MemoryLimitExceeded, MonitorSample, ResourceMonitor, append_jsonl, trial_records
from .reporting.callback import CallbackList
from .resources import Placement, Resources, ResourcePool, ResourcesSpec, resolve_resources
from .safe_files import PRIVATE_FILE_MODE
from .session import read_checkpoint_meta
from .space import Space
from .stopper import Stopper
from .storage import (
    EXPERIMENT_FILE, SEARCHER_STATE_FILE, Journal, TrialRecorder, copy_checkpoint, remove_checkpoint,
    write_json_atomic,
)
from .trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial

logger = logging.getLogger(__name__)

_SAVE_INTERVAL_S = 1.0
_TICK_INTERVAL_S = 0.5
_RETRY_SUGGEST_S = 0.05


@dataclass
class ExperimentSpec:
    """What run() resolved from its arguments."""

    name: str
    experiment_dir: str
    metric: str | None
    mode: str | None
    num_samples: int
    max_concurrent_trials: int | None
    time_budget_s: float | None
    max_failures: int
    fail_fast: bool
    checkpoint_frequency: int
    checkpoint_at_end: bool
    keep_checkpoints_num: int | None
    seed: int | None
    trainable_name: str
    resources: ResourcesSpec
    monitor_interval_s: float | None = None  # sample trials' CPU, memory and GPUs this often
    memory_limit_mb: float | None = None  # a trial whose process tree holds more ends as ERROR


class Controller:
    """Runs one experiment to its end. Built by `asynctune.run`; see there for the arguments."""

    def __init__(self, *, spec: ExperimentSpec, trainable_blob: bytes, trainable_key: str, space: Space,
                 searcher: Searcher, scheduler: Scheduler, executor: Executor, stopper: Stopper | None,
                 callbacks: CallbackList, trials: Sequence[Trial] = (), time_used_s: float = 0.0) -> None:
        self.spec = spec
        self.trainable_blob, self.trainable_key = trainable_blob, trainable_key
        self.space, self.searcher, self.scheduler = space, searcher, scheduler
        self.executor, self.stopper, self.callbacks = executor, stopper, callbacks
        self._trials: list[Trial] = list(trials)
        self._waiting: dict[Trial, None] = {t: None for t in self._trials if t.status in (Status.PENDING, Status.PAUSED)}
        self._runs: dict[Trial, TrialRun] = {}
        self._recorders: dict[Trial, TrialRecorder] = {}
        self._stop_requested: set[Trial] = set()
        self._pause_requested: set[Trial] = set()
        self._resume_requested: dict[Trial, tuple[dict[str, Any] | None, str | None]] = {}
        self._killing: set[Trial] = set()
        self._memory_errors: dict[Trial, MemoryLimitExceeded] = {}
        self._wakeup = asyncio.Event()
        self._dirty = asyncio.Event()
        self._searcher_done = False
        self._searcher_finished_told = False
        self._max_trials: int | None = None
        self._stopping: str | None = None  # why the experiment is ending early
        self._fatal: BaseException | None = None
        self._metric_seen = False
        self._pool: ResourcePool | None = None
        self._max_running = 1
        self._searcher_thread: concurrent.futures.ThreadPoolExecutor | None = None
        # Most searchers ignore intermediate results: skip the call on the hot path then.
        self._searcher_sees_results = type(searcher).on_trial_result is not Searcher.on_trial_result
        self._journal: Journal | None = None
        self._replaying = False
        self._interrupted = False
        self.resumed = bool(self._trials)
        self.time_used_s = time_used_s  # spent by earlier sessions of a resumed experiment
        self.start_time = time.time()
        self._deadline: float | None = None
        self.status = "RUNNING"

    # TrialControl, for schedulers --------------------------------------------------------------

    @property
    def trials(self) -> Sequence[Trial]:
        return self._trials

    def stop_trial(self, trial: Trial) -> None:
        if self._replaying:
            return
        if trial.status is Status.RUNNING:
            self._stop_requested.add(trial)
        elif trial.status in (Status.PENDING, Status.PAUSED):
            self._waiting.pop(trial, None)
            self._complete(trial)
            self._wakeup.set()

    def pause_trial(self, trial: Trial) -> None:
        if self._replaying:
            return
        if trial.status is Status.RUNNING:
            self._pause_requested.add(trial)

    def resume_trial(self, trial: Trial, *, config: dict[str, Any] | None = None,
                     checkpoint: str | None = None) -> None:
        if self._replaying:
            return
        if trial.status is Status.RUNNING:
            # Its pause may be in flight (decided but not yet done): resume once it lands.
            self._resume_requested[trial] = (config, checkpoint)
            return
        if trial.status is not Status.PAUSED:
            return
        self._resume_requested.pop(trial, None)
        if config is not None:
            trial.config = config
            self._recorder(trial).write_params(config)
        if checkpoint is not None and not _inside(checkpoint, trial.path):
            checkpoint = copy_checkpoint(checkpoint, trial.path, f"checkpoint_clone_{trial.num_results:06d}")
        self._set_restore_point(trial, checkpoint or trial.checkpoint)
        trial.status = Status.PENDING
        self._waiting[trial] = None
        self.callbacks.on_trial_decision(trial, "RESUME")
        self._changed(trial)
        self._wakeup.set()  # a worker may be free for it now

    # The experiment ------------------------------------------------------------------------------

    async def run(self) -> list[Trial]:
        try:
            await self.executor.start()
            self.start_time = self.executor.now()
            budget = self.spec.time_budget_s
            self._deadline = self.start_time + max(0.0, budget - self.time_used_s) if budget else None
            self._pool = ResourcePool(self.executor.inventories())
            self.executor.watch_hosts(self._wakeup.set)
            self._check_fixed_resources()
            if self.searcher.slow:
                self._searcher_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asynctune-searcher")
            self._max_trials = self.searcher.max_trials(self.spec.num_samples)
            self._journal = Journal(self.spec.experiment_dir)
            self.callbacks.on_experiment_start(self.spec.experiment_dir, self._trials)
            await self.scheduler.start(self)
            if self.resumed:
                await self._replay_history()
            async with TaskGroup() as tasks:
                self._tasks = tasks
                saver = tasks.create_task(self._save_periodically(), name="asynctune-save")
                ticker = tasks.create_task(self._tick_periodically(), name="asynctune-tick")
                monitor = (tasks.create_task(self._monitor().run(), name="asynctune-monitor")
                           if self.spec.monitor_interval_s else None)
                try:
                    await self._main_loop()
                except BaseException:
                    self._interrupted = True  # Ctrl-C, SIGTERM, cancellation or a bug: keep trials resumable
                    raise
                finally:
                    if self._runs:
                        await self._kill_all()
                    saver.cancel()
                    ticker.cancel()
                    if monitor is not None:
                        monitor.cancel()
            self.status = "ERROR" if self._fatal else ("STOPPED" if self._stopping else "FINISHED")
        except BaseException:
            self.status = "INTERRUPTED"
            raise
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise self._fatal
        self._check_metric_reported()
        return self._trials

    async def _replay_history(self) -> None:
        """Rebuild the scheduler's state after a resume by showing it every recorded result again.

        Its decisions are ignored (what happened is on disk); acting on trials does nothing while
        replaying. This needs no pickled scheduler, so coroutine schedulers resume too."""
        from .recovery import recorded_history

        self._replaying = True
        try:
            for trial in sorted(self._trials, key=lambda t: t.index):
                self.scheduler.on_trial_add(trial)
            final = {t: t.last_result for t in self._trials}
            for trial, result in recorded_history(self._trials):
                trial.last_result = result
                decision = self.scheduler.on_trial_result(trial, result)
                if inspect.isawaitable(decision):
                    await decision
            for trial in self._trials:
                trial.last_result = final[trial]
                if trial.status is Status.TERMINATED:
                    self.scheduler.on_trial_complete(trial, trial.last_result)
                elif trial.status is Status.ERROR:
                    self.scheduler.on_trial_error(trial)
        finally:
            self._replaying = False

    async def _main_loop(self) -> None:
        while True:
            self._wakeup.clear()
            await self._start_ready_trials()
            if self._stopping is None and self._budget_spent():
                self._stopping = f"time_budget_s={self.spec.time_budget_s} spent"
            if self._stopping is not None or self._is_done():
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
                self._stopping = f"time_budget_s={self.spec.time_budget_s} spent"
                logger.info("stopping: %s", self._stopping)
                return
            finally:
                self.executor.controller_idle(False)

    def _budget_spent(self) -> bool:
        return self._deadline is not None and self.executor.now() >= self._deadline

    def _is_done(self) -> bool:
        if self._runs:
            return False
        if not self._searcher_exhausted():
            return False
        return not self._waiting or self.scheduler.choose_trial_to_run(self._candidates()) is None

    def _searcher_exhausted(self) -> bool:
        return self._searcher_done or (self._max_trials is not None and len(self._trials) >= self._max_trials)

    async def _start_ready_trials(self) -> None:
        while self._stopping is None and len(self._runs) < self._max_running:
            if not any(t.status is Status.PENDING for t in self._waiting):
                await self._add_trial()
            candidates = self._candidates()
            if not candidates:
                return
            trial = self.scheduler.choose_trial_to_run(candidates)
            if trial is None:
                return
            resources = Resources.parse(trial.resources)
            placement = self._acquire(resources) if self._pool else None
            if placement is None:
                return  # wait until a running trial frees its resources
            self._waiting.pop(trial, None)
            trial.status = Status.RUNNING
            trial.placement = placement
            self._runs[trial] = None  # type: ignore[assignment]  # reserved; filled by the task
            self._tasks.create_task(self._run_trial(trial, placement), name=f"trial-{trial.trial_id}")

    def _acquire(self, resources: Resources) -> Placement | None:
        """A placement on a host the executor can use now (a down SSH host is left out)."""
        assert self._pool is not None
        return self._pool.acquire(resources, usable=self.executor.host_available)

    def _candidates(self) -> list[Trial]:
        return sorted(self._waiting, key=lambda t: t.index)

    async def _add_trial(self) -> None:
        if self._searcher_exhausted():
            await self._searcher_finished()
            return
        index = len(self._trials)
        trial_id = f"trial_{index:05d}"
        if self._searcher_thread is not None:
            loop = asyncio.get_running_loop()
            config = await loop.run_in_executor(self._searcher_thread, self.searcher.suggest, trial_id)
        else:
            config = self.searcher.suggest(trial_id)
        if config is FINISHED:
            self._searcher_done = True
            await self._searcher_finished()
            return
        if config is None:  # "not now": ask again soon, or when a trial ends
            if not self._runs:
                asyncio.get_running_loop().call_later(_RETRY_SUGGEST_S, self._wakeup.set)
            return
        if not isinstance(config, dict):
            raise AsynctuneError(f"{type(self.searcher).__name__}.suggest() returned {config!r}, not a dict")
        resources = self._resources_for(config)
        trial = Trial(trial_id=trial_id, config=config, index=index, resources=resources.as_dict(),
                      path=os.path.join(self.spec.experiment_dir, trial_id))
        self._recorder(trial).write_params(config)
        self._trials.append(trial)
        self._waiting[trial] = None
        self._changed(trial, event="added")
        self._searcher_hook(self._save_searcher)
        self.scheduler.on_trial_add(trial)

    async def _searcher_finished(self) -> None:
        """Tell the scheduler, once, that no trial will be added (FINISHED or num_samples reached)."""
        if self._searcher_finished_told:
            return
        self._searcher_finished_told = True
        on_finished = getattr(self.scheduler, "on_searcher_finished", None)
        if on_finished is not None:
            outcome = on_finished()
            if inspect.isawaitable(outcome):
                await outcome

    def _resources_for(self, config: dict[str, Any]) -> Resources:
        spec = self.spec.resources
        resources = resolve_resources(spec, config)
        if self._pool is not None:
            self._pool.check(resources)
        return resources

    def _check_fixed_resources(self) -> None:
        assert self._pool is not None
        limit = self.spec.max_concurrent_trials
        if callable(self.spec.resources):
            self._max_running = limit or 10**6
            return
        resources = Resources.parse(self.spec.resources)
        self._pool.check(resources)
        capacity = self._pool.capacity(resources)
        self._max_running = max(1, min(capacity, limit) if limit else capacity)

    # One trial -----------------------------------------------------------------------------------

    async def _run_trial(self, trial: Trial, placement: Placement) -> None:
        request = TrialRequest(
            trial_id=trial.trial_id, trial_dir=trial.path, config=trial.config,
            trainable_key=self.trainable_key, trainable_blob=self.trainable_blob,
            restore_checkpoint=trial.restore_checkpoint, start_iteration=trial.restore_iteration,
            start_time_total=trial.restore_time_total, checkpoint_frequency=self.spec.checkpoint_frequency,
            checkpoint_at_end=self.spec.checkpoint_at_end, placement=placement.as_dict(),
            experiment_dir=self.spec.experiment_dir,
        )
        if trial.start_time is None:
            trial.start_time = self.executor.now()
        if trial.iteration > trial.restore_iteration:
            self._rewind(trial)
        self._changed(trial)
        try:
            run = await self.executor.launch(request, placement)
            self._runs[trial] = run
            self.callbacks.on_trial_start(trial)
            if self._stopping is not None:  # the experiment ended while this trial was starting
                self._killing.add(trial)
                await run.kill()
            async for event in run.events():
                if isinstance(event, ResultEvent):
                    await self._on_result(trial, run, event)
                elif isinstance(event, DoneEvent):
                    self._on_done(trial, event)
                elif isinstance(event, ErrorEvent):
                    self._on_failure(trial, event.error, event.traceback)
                elif isinstance(event, WorkerLostEvent):
                    if trial in self._memory_errors:
                        self._on_failure(trial, str(self._memory_errors.pop(trial)), event.stderr_tail)
                    elif trial in self._killing:
                        self._on_killed(trial)
                    else:
                        self._on_failure(trial, event.error, event.stderr_tail)
        except ExecutorLost as exc:  # no trial can run any more: end the experiment, resumable
            self._on_executor_lost(trial, exc)
        except Exception as exc:  # the executor could not run it: a failure of this trial only
            self._on_failure(trial, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            self._runs.pop(trial, None)
            self._stop_requested.discard(trial)
            self._pause_requested.discard(trial)
            if trial.status is not Status.PAUSED:
                self._resume_requested.pop(trial, None)
            self._killing.discard(trial)
            self._memory_errors.pop(trial, None)
            if self._pool is not None:
                self._pool.release(placement)
            self._wakeup.set()

    async def _on_result(self, trial: Trial, run: TrialRun, event: ResultEvent) -> None:
        result = event.result
        trial.last_result = result
        trial.num_results += 1
        if not self._metric_seen and self.spec.metric is not None and self.spec.metric in result:
            self._metric_seen = True
        trial.update_best(self.spec.metric, self.spec.mode, result)
        self._recorder(trial).record(result)  # on disk before anyone decides anything
        if event.checkpoint is not None:
            self._on_checkpoint(trial, event.checkpoint, result)
        if self._searcher_sees_results:
            self._searcher_hook(self.searcher.on_trial_result, trial.trial_id, result)
        self.callbacks.on_trial_result(trial, result)

        decision = self.scheduler.on_trial_result(trial, result)
        if decision.__class__ is not Decision and inspect.isawaitable(decision):  # fast path first
            decision = await decision
        by_scheduler = decision is not CONTINUE
        if self.stopper is not None:
            if self.stopper(trial.trial_id, result):
                decision = STOP
            if self._stopping is None and self.stopper.stop_all():
                self._stopping = "the stopper ended the experiment"
                self._wakeup.set()
        if self._stopping is None and self.executor.virtual_time and self._budget_spent():
            self._stopping = f"time_budget_s={self.spec.time_budget_s} spent"
            self._wakeup.set()
        if trial in self._stop_requested or self._stopping is not None:
            decision = STOP
        elif trial in self._pause_requested and decision is CONTINUE:
            decision = PAUSE
        if isinstance(decision, Mutate):
            decision = self._prepare_mutation(trial, decision)
        elif not isinstance(decision, Decision):
            raise AsynctuneError(f"{type(self.scheduler).__name__}.on_trial_result returned {decision!r}")
        run.decide(decision)
        if by_scheduler:  # a stop criterion ending a trial is no news; a scheduler's decision is
            detail = "" if not isinstance(decision, Mutate) else f"config={decision.config}"
            self.callbacks.on_trial_decision(trial, "MUTATE" if isinstance(decision, Mutate) else decision.value, detail)

    def _on_checkpoint(self, trial: Trial, checkpoint: str, result: dict[str, Any]) -> None:
        previous = trial.checkpoint
        trial.checkpoint = checkpoint
        trial.checkpoint_iteration = int(result.get("training_iteration", 0))
        trial.checkpoint_time_total = float(result.get("time_total_s", 0.0))
        self.callbacks.on_checkpoint(trial, checkpoint)
        keep = self.spec.keep_checkpoints_num
        if keep is not None and previous is not None and previous != checkpoint:
            kept = getattr(trial, "_kept_checkpoints", [])
            kept.append(previous)
            while len(kept) >= keep:
                remove_checkpoint(kept.pop(0))
            trial._kept_checkpoints = kept  # type: ignore[attr-defined]

    def _prepare_mutation(self, trial: Trial, mutate: Mutate) -> Mutate:
        """Copy a donor's checkpoint into this trial's directory, so the donor may delete its own."""
        checkpoint = mutate.checkpoint
        if checkpoint is not None and not _inside(checkpoint, trial.path):
            checkpoint = copy_checkpoint(checkpoint, trial.path, f"checkpoint_clone_{trial.num_results:06d}")
        trial.config = mutate.config
        self._recorder(trial).write_params(mutate.config)
        if checkpoint is not None:
            trial.checkpoint = checkpoint
        self._changed(trial, event="mutated")
        return Mutate(mutate.config, checkpoint)

    def _on_done(self, trial: Trial, event: DoneEvent) -> None:
        if event.checkpoint is not None and event.checkpoint != trial.checkpoint:
            meta = read_checkpoint_meta(event.checkpoint)
            trial.checkpoint = event.checkpoint
            trial.checkpoint_iteration = int(meta.get("iteration", trial.iteration))
            trial.checkpoint_time_total = float(meta.get("time_total_s", 0.0))
            self.callbacks.on_checkpoint(trial, event.checkpoint)
        if event.how == "paused":
            trial.status = Status.PAUSED
            self._set_restore_point(trial, trial.checkpoint)
            self._waiting[trial] = None
            self._changed(trial)
            if trial in self._resume_requested:
                config, checkpoint = self._resume_requested.pop(trial)
                self.resume_trial(trial, config=config, checkpoint=checkpoint)
        else:
            self._complete(trial)

    def _on_killed(self, trial: Trial) -> None:
        self._set_restore_point(trial, trial.checkpoint)
        if self._interrupted:  # not the trial's end: a resume restarts it from its checkpoint
            trial.status = Status.PENDING
            self._changed(trial, event="interrupted")
            return
        self._complete(trial)

    def _on_executor_lost(self, trial: Trial, exc: ExecutorLost) -> None:
        self._interrupted = True  # trials still running are killed as resumable, not finished
        self._set_restore_point(trial, trial.checkpoint)
        trial.status = Status.PENDING
        self._changed(trial, event="interrupted")
        if self._fatal is None:
            self._fatal = ExecutorLost(f"{exc}; resume with asynctune.resume({self.spec.experiment_dir!r})")
            self._stopping = str(exc)
            self._wakeup.set()

    def _complete(self, trial: Trial) -> None:
        trial.status = Status.TERMINATED
        trial.end_time = self.executor.now()
        self._changed(trial)
        self.scheduler.on_trial_complete(trial, trial.last_result)
        self._searcher_hook(self.searcher.on_trial_complete, trial.trial_id, trial.last_result, False)
        self._searcher_hook(self._save_searcher)
        self.callbacks.on_trial_complete(trial)
        self._close_recorder(trial)

    def _on_failure(self, trial: Trial, error: str, trace: str) -> None:
        trial.num_failures += 1
        self._recorder(trial).write_error(trial.num_failures, error, trace)
        trial.error, trial.error_traceback = error, trace
        max_failures = self.spec.max_failures
        if self._stopping is None and (max_failures < 0 or trial.num_failures <= max_failures):
            logger.info("trial %s failed (%s); retry %d from %s", trial.trial_id, error,
                           trial.num_failures, trial.checkpoint or "scratch")
            self._set_restore_point(trial, trial.checkpoint)
            trial.status = Status.PENDING
            self._waiting[trial] = None
            self._changed(trial, event="retry")
            return
        trial.status = Status.ERROR
        trial.end_time = self.executor.now()
        logger.warning("trial %s failed: %s (traceback in %s)", trial.trial_id, error,
                       os.path.join(trial.path, "error.txt"))
        self._changed(trial)
        self.scheduler.on_trial_error(trial)
        self._searcher_hook(self.searcher.on_trial_complete, trial.trial_id, trial.last_result, True)
        self._searcher_hook(self._save_searcher)
        self.callbacks.on_trial_error(trial)
        self._close_recorder(trial)
        if self.spec.fail_fast and self._fatal is None:
            self._fatal = TrialFailed(trial.trial_id, error, trace)
            self._stopping = f"fail_fast: trial {trial.trial_id} failed"
            self._wakeup.set()

    def _set_restore_point(self, trial: Trial, checkpoint: str | None) -> None:
        trial.restore_checkpoint = checkpoint
        if checkpoint is None:
            trial.restore_iteration, trial.restore_time_total = 0, 0.0
            return
        meta = read_checkpoint_meta(checkpoint)
        trial.restore_iteration = int(meta.get("iteration", trial.checkpoint_iteration))
        trial.restore_time_total = float(meta.get("time_total_s", trial.checkpoint_time_total))

    async def _kill_all(self) -> None:
        runs = [(t, r) for t, r in self._runs.items() if r is not None]
        self._killing.update(t for t, _ in runs)
        await asyncio.gather(*(run.kill() for _, run in runs), return_exceptions=True)

    # Resource monitoring -------------------------------------------------------------------------

    def _monitor(self) -> ResourceMonitor:
        def running() -> list[tuple[str, int]]:  # psutil sees this machine's processes only
            return [(t.trial_id, r.pid) for t, r in self._runs.items()
                    if r is not None and r.pid is not None and r.host == "localhost"]

        limit = self.spec.memory_limit_mb
        return ResourceMonitor(running, self._on_monitor_sample, interval_s=self.spec.monitor_interval_s or 5.0,
                               memory_limit_mb=limit, on_memory_exceeded=self._on_memory_exceeded if limit else None)

    def _on_monitor_sample(self, sample: MonitorSample) -> None:
        trials = {t.trial_id: t for t in self._trials}  # a trial may have ended since it was sampled
        records = trial_records(sample, {i: t.placement for i, t in trials.items()})
        for trial_id, record in records.items():
            append_jsonl(os.path.join(trials[trial_id].path, MONITOR_FILE), record)

    def _on_memory_exceeded(self, error: MemoryLimitExceeded) -> None:
        for trial, run in self._runs.items():
            if trial.trial_id == error.trial_id and run is not None and trial not in self._memory_errors:
                self._memory_errors[trial] = error  # its WorkerLostEvent then ends it with this error
                self._tasks.create_task(run.kill(), name=f"kill-{trial.trial_id}")

    # Helpers -------------------------------------------------------------------------------------

    def _recorder(self, trial: Trial) -> TrialRecorder:
        recorder = self._recorders.get(trial)
        if recorder is None:
            recorder = self._recorders[trial] = TrialRecorder(trial.path)
        return recorder

    def _close_recorder(self, trial: Trial) -> None:
        recorder = self._recorders.pop(trial, None)
        if recorder is not None:
            recorder.close()

    def _searcher_hook(self, hook: Any, *args: Any) -> None:
        if self._searcher_thread is not None:
            self._searcher_thread.submit(_log_errors, hook, *args)
        else:
            _log_errors(hook, *args)

    def _changed(self, trial: Trial | None = None, *, event: str = "status") -> None:
        """Note a change: the trial's new state goes to the journal now, the snapshot soon."""
        self._dirty.set()
        if trial is not None and self._journal is not None:
            self._journal.write({
                "event": event, "time": time.time(), "trial_id": trial.trial_id, "index": trial.index,
                "status": trial.status.value, "config": trial.config, "resources": trial.resources,
                "checkpoint": trial.checkpoint, "restore_checkpoint": trial.restore_checkpoint,
                "num_failures": trial.num_failures, "error": trial.error,
            })

    def _save_searcher(self) -> None:
        path = os.path.join(self.spec.experiment_dir, SEARCHER_STATE_FILE)
        self.searcher.save(path + ".tmp")
        os.chmod(path + ".tmp", PRIVATE_FILE_MODE)
        os.replace(path + ".tmp", path)

    def _rewind(self, trial: Trial) -> None:
        """The trial restarts from an earlier checkpoint: the results after it will come again."""
        kept = self._recorder(trial).rewind(trial.restore_iteration)
        trial.last_result = kept[-1] if kept else None
        trial.num_results = len(kept)
        trial.metric_best = None
        for result in kept:
            trial.update_best(self.spec.metric, self.spec.mode, result)

    async def _save_periodically(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self.save_state()
            await asyncio.sleep(_SAVE_INTERVAL_S)

    async def _tick_periodically(self) -> None:
        while True:
            await asyncio.sleep(_TICK_INTERVAL_S)
            for recorder in self._recorders.values():
                recorder.flush()
            self.callbacks.on_tick(self._trials)

    def save_state(self) -> None:
        state = {
            "name": self.spec.name,
            "status": self.status,
            "metric": self.spec.metric,
            "mode": self.spec.mode,
            "trainable": self.spec.trainable_name,
            "start_time": self.start_time,
            "time_used_s": self.time_used_s + (self.executor.now() - self.start_time),
            "time_budget_s": self.spec.time_budget_s,
            "num_samples": self.spec.num_samples,
            "seed": self.spec.seed,
            "searcher": type(self.searcher).__name__,
            "scheduler": type(self.scheduler).__name__,
            "stopping": self._stopping,
            "trials": [t.summary() for t in self._trials],
        }
        try:
            write_json_atomic(os.path.join(self.spec.experiment_dir, EXPERIMENT_FILE), state)
        except OSError as exc:
            logger.error("could not save %s: %s", EXPERIMENT_FILE, exc)

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
            for trial in list(self._recorders):
                self._close_recorder(trial)
            if self._journal is not None:
                self._journal.close()
            if self._searcher_thread is not None:
                self._searcher_thread.shutdown(wait=True)
            if self.status != "INTERRUPTED" and self._stopping is None:
                self._finish_paused_trials()
            self.save_state()
            self.callbacks.on_experiment_end(self._trials)

    def _finish_paused_trials(self) -> None:
        """At a natural end, paused trials that nobody resumed are finished, not pending."""
        for trial in self._trials:
            if trial.status in (Status.PAUSED, Status.PENDING):
                trial.status = Status.TERMINATED
                trial.end_time = trial.end_time or time.time()

    def _check_metric_reported(self) -> None:
        metric = self.spec.metric
        if metric is None or self._metric_seen or not any(t.num_results for t in self._trials):
            return
        keys = sorted({k for t in self._trials if t.last_result for k in t.last_result})
        raise ValueError(f"metric={metric!r} was never reported by any trial; reported keys: {keys}. "
                         f"Results are kept in {self.spec.experiment_dir}")


def _inside(path: str, directory: str) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(directory) + os.sep)


def _log_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("%s failed", getattr(fn, "__qualname__", fn))
