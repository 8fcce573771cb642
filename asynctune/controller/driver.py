"""One trial attempt from launch to its last event: what each event the executor reports means.

`TrialDriver.run` is the body of the task the controller starts for every attempt. It
launches the trial and reads its events (executors/base.py) in order:

- result: recorded on disk first (`TrialRuntime.record`), the metric checked, then the
  searcher (when it looks at results), the callbacks and the scheduler; the actions the
  scheduler queued are applied, the decision settled (decision.py) and sent back to the worker;
- done: finished, or paused (and maybe resumed at once), through `TrialOutcomes` (outcomes.py);
- error / worker lost: a failure, retried while max_failures allows, unless the controller
  killed it (then it finished, or stays resumable when the experiment was interrupted) or the
  disk is full (the experiment stops, resumable).

Freeing the attempt's place (its resources, the running set) is the controller's, when this returns.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from ..algorithms.base import Scheduler, resolve
from .runtime import TrialRuntime, TrialStorageError
from .decision import settle
from .escalation import StopEscalation
from .ending import Ending
from ..errors import RETURNED_HINT, ExecutorLost, StorageFull, names_disk_full
from ..executors.base import DoneEvent, ErrorEvent, Executor, ResultEvent, TrialEvent, WorkerLostEvent
from ..worker.protocol import TrialRequest
from .metric_check import MetricCheck
from ..options import ExperimentSpec
from .outcomes import TrialOutcomes
from ..reporting.callback import CallbackList
from ..core.resources import Placement
from .searcher_driver import SearcherDriver
from ..core.stopper import Stopper
from ..core.trial import CONTINUE, STOP, Decision, Mutate, Status, Trial
from ..store.signing import signing_key

logger = logging.getLogger(__name__)


class TrialDriver:
    """Runs trial attempts and turns each of their events into the trial's transitions."""

    def __init__(self, *, spec: ExperimentSpec, trainable_key: str, trainable_blob: bytes, executor: Executor,
                 scheduler: Scheduler, stopper: Stopper | None, callbacks: CallbackList, searching: SearcherDriver,
                 metric_check: MetricCheck, outcomes: TrialOutcomes, ending: Ending,
                 budget_spent: Callable[[], bool], kill: Callable[[TrialRuntime], None]) -> None:
        self._spec, self._options = spec, spec.options
        self._trainable_key, self._trainable_blob = trainable_key, trainable_blob
        self._executor, self._scheduler, self._stopper = executor, scheduler, stopper
        self._callbacks, self._searching, self._metric_check = callbacks, searching, metric_check
        self._outcomes, self._ending, self._budget_spent = outcomes, ending, budget_spent
        self._scheduler_name = type(scheduler).__name__
        self._escalation = StopEscalation(spec.options.stop_grace_s, kill)
        self.foreign_reports: set[str] = set()  # other libraries' report() seen in trials that reported nothing
        self.returned_instead: str | None = None  # what such a trial returned (a dict, a number), if anything

    async def run(self, runtime: TrialRuntime, placement: Placement) -> None:
        """Launch the attempt and handle its events until the last; a failure of the executor to
        run it is this trial's failure, the executor's loss ends the experiment (resumable)."""
        trial, options, ending = runtime.trial, self._options, self._ending
        request = TrialRequest(
            trial_id=trial.trial_id, trial_dir=trial.path, config=trial.config, trainable_key=self._trainable_key,
            trainable_blob=self._trainable_blob, restore_checkpoint=trial.restore_checkpoint,
            start_iteration=trial.restore_iteration, start_time_total=trial.restore_time_total,
            checkpoint_frequency=options.checkpoint_frequency, checkpoint_at_end=options.checkpoint_at_end,
            placement=placement.as_dict(), experiment_dir=self._spec.experiment_dir, signing_key=signing_key())
        trial.ending = False
        if self._pipelines():  # answer at once only where the scheduler must
            synchronous = self._scheduler.synchronous_results(trial)
            if synchronous is not None:
                request.pipelined = True
                request.sync_iterations = frozenset(synchronous) | self._stop_iteration(trial)
        try:
            run = runtime.run = await self._executor.launch(request, placement)
            runtime.open_results()  # while the worker starts the trial
            self._callbacks.on_trial_start(trial)
            if ending.why is not None or runtime.write_error is not None:  # it ended while it was starting
                runtime.killing = runtime.write_error is None
                await run.kill()
            try:
                async for event in run.events():
                    if isinstance(event, ResultEvent):
                        await self.on_result(runtime, event)
                    else:
                        self._on_end(runtime, event)
            finally:
                self._escalation.disarm(runtime)
        except ExecutorLost as exc:  # no trial can run any more: end the experiment, resumable
            ending.interrupted = True  # trials still running are killed as resumable, not finished
            if trial.status is Status.RUNNING:
                runtime.interrupted()
            ending.stop(ExecutorLost(f"{exc}; resume with asynctune.resume({self._spec.experiment_dir!r})"), str(exc))
        except Exception as exc:  # the executor or a hook failed on it: a failure of this trial only
            if trial.status is not Status.RUNNING:
                raise  # it had ended: a bug in a hook, not the trial's failure
            trace = traceback.format_exc()
            if runtime.run is not None:  # its worker waits for a decision that will not come
                runtime.killing = True
                try:
                    await runtime.run.kill()
                except Exception:  # noqa: BLE001  the failure to report is the one above
                    logger.exception("could not kill %s's worker", trial.trial_id)
            self._outcomes.failed(runtime, f"{type(exc).__name__}: {exc}", trace)

    def _pipelines(self) -> bool:
        """Whether trials may run pipelined: a stop criterion may end one at any result, and
        unless the executor accepts that a step late, every result waits for its answer."""
        executor = self._executor
        return executor.pipelines_decisions and (self._stopper is None or executor.pipelines_stop_criteria)

    def _stop_iteration(self, trial: Trial) -> frozenset[int]:
        """Where the stop criterion is known to stop the trial (stop={"training_iteration": n}): that result waits for its answer,
        so the trial stops exactly there even pipelined (over SSH; the local executor answers
        every result when a stop criterion is given). Other criteria cannot be foreseen."""
        if self._stopper is None:
            return frozenset()
        iteration = self._stopper.stop_iteration(after=trial.restore_iteration)
        return frozenset() if iteration is None else frozenset({iteration})

    async def on_result(self, runtime: TrialRuntime, event: ResultEvent) -> None:
        """The hot path: one result, recorded, shown to everyone, and the decision sent back."""
        trial, ending = runtime.trial, self._ending
        if runtime.write_error is not None or isinstance(ending.fatal, StorageFull):
            return  # it is being killed: its directory, or the disk, cannot take this result
        try:
            result = runtime.record(event)  # on disk before anyone decides anything
        except (TrialStorageError, StorageFull) as exc:
            return self._outcomes.write_failed(runtime, exc)
        if (missing := self._metric_check.missing(trial, result)) is not None:  # a misspelt metric= ends it now
            ending.stop(missing, f"metric not reported by {trial.trial_id}")
        if self._searching.sees_results:
            self._searching.result(trial.trial_id, result)
        self._callbacks.on_trial_result(trial, result)
        stop = False
        if self._stopper is not None:
            stop = self._stopper(trial.trial_id, result)
            if ending.why is None and self._stopper.stop_all():
                ending.stop(None, "the stopper ended the experiment")
        if ending.why is None and self._executor.virtual_time and self._budget_spent():
            ending.stop(None, f"time_budget_s={self._options.time_budget_s} spent")
        # Known before the scheduler decides: this result is the trial's last (its stop criterion,
        # the experiment's end). PBT then records no exploit that would never run.
        trial.ending = stop or runtime.stop_requested or ending.why is not None
        decision = self._scheduler.on_trial_result(trial, result)
        if decision.__class__ is not Decision:  # fast path first
            decision = await resolve(decision)
        self._outcomes.apply_actions()
        stop = stop or runtime.stop_requested
        final = settle(decision, stop=stop or ending.why is not None, pause=runtime.pause_requested,
                       owner=self._scheduler_name)
        trial.ending = final is STOP  # this result is its last: no scheduler may clone it any more
        if final is STOP and (decision is STOP or runtime.stop_requested):  # the scheduler's stop
            self._outcomes.stopping(trial)
        if isinstance(final, Mutate):
            try:
                final = runtime.mutate(final)
            except (TrialStorageError, StorageFull) as exc:
                return self._outcomes.write_failed(runtime, exc)
        run = runtime.run
        assert run is not None
        run.decide(final)
        if (final is STOP or final is Decision.PAUSE) and not self._executor.virtual_time:
            # It must return within stop_grace_s of reading the decision. A pipelined trial may
            # be a step past this result, and reads it at its next report: a step later.
            ahead_s = 0.0 if run.waits_for(trial.iteration) else 2 * _seconds(result.get("time_this_iter_s"))
            self._escalation.arm(runtime, final, ahead_s)
        # A stop criterion or the experiment's end ending a trial is no news, also where it overrules
        # the scheduler's PAUSE or MUTATE on the same result (the trial finished); a scheduler's decision is.
        overruled = final is STOP and decision is not STOP and not runtime.stop_requested
        if decision is not CONTINUE and not overruled:
            detail = "" if not isinstance(final, Mutate) else f"config={final.config}"
            self._callbacks.on_trial_decision(trial, "MUTATE" if isinstance(final, Mutate) else final.value, detail)

    def _on_end(self, runtime: TrialRuntime, event: TrialEvent) -> None:
        """The attempt's last event: done, an error in the trial, or its worker lost."""
        outcomes = self._outcomes
        # Killed because the experiment was interrupted: an end the kill caused (a stop the worker
        # obeyed, an error such as SystemExit from the trainable's own SIGTERM handler) is no end of
        # the trial; a resume restarts it from its checkpoint.
        cut_short = runtime.killing and self._ending.interrupted and runtime.write_error is None
        if (runtime.overdue is not None and not cut_short and not isinstance(event, DoneEvent)
                and runtime.memory_error is None and runtime.write_error is None):
            # Told to stop or pause, it was ended for not returning in time: the decision stands.
            if runtime.overdue is Decision.PAUSE:
                return outcomes.paused(runtime)
            return outcomes.complete(runtime, killed=True)
        if isinstance(event, DoneEvent):
            # A trial resumed at its end (paused after its last step, PBT's turns) returns at once:
            # only one that never reported in any attempt is worth the warning.
            if event.info.get("reported") is False and not runtime.trial.num_results:
                self._returned_without_reporting(runtime, event.info.get("foreign_reports") or [],
                                                 event.info.get("returned"))
            runtime.final_checkpoint(event.checkpoint)
            if runtime.write_error is not None:  # it ended before the kill: still a failure
                outcomes.failed(runtime, runtime.write_error, "")
            elif event.how == "paused":
                outcomes.paused(runtime)
            elif event.how == "stopped" and cut_short:
                runtime.interrupted()
            else:
                outcomes.complete(runtime)
        elif isinstance(event, ErrorEvent):
            if names_disk_full(event.error):  # no fault of the trial: stop, it stays resumable
                runtime.interrupted()
                self._ending.disk_full(StorageFull(runtime.trial.path, self._spec.experiment_dir))
            elif cut_short and runtime.memory_error is None:
                runtime.interrupted()
            else:
                outcomes.failed(runtime, event.error, event.traceback)
        elif isinstance(event, WorkerLostEvent):
            if runtime.memory_error is not None:
                outcomes.failed(runtime, str(runtime.memory_error), event.stderr_tail)
            elif runtime.write_error is not None:
                outcomes.failed(runtime, runtime.write_error, "")
            elif not runtime.killing:
                outcomes.failed(runtime, event.error, event.stderr_tail)
            elif self._ending.interrupted:  # not the trial's end: a resume restarts it from its checkpoint
                runtime.interrupted()
            else:
                outcomes.complete(runtime, killed=True)

    def _returned_without_reporting(self, runtime: TrialRuntime, foreign: list[str], returned: str | None) -> None:
        self.foreign_reports.update(foreign)
        if returned is not None:
            self.returned_instead = returned
        instead = f" (it imported {' and '.join(foreign)}: call asynctune.report instead)" if foreign else ""
        instead += f" (it returned a {returned}: {RETURNED_HINT})" if returned is not None else ""
        logger.warning("trial %s returned without reporting a result: its trainable never called "
                       "asynctune.report(...)%s", runtime.trial.trial_id, instead)


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and value == value and value >= 0 else 0.0
