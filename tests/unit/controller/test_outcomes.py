"""TrialOutcomes: what follows when a trial ends, fails, pauses or is resumed, and in which order
the scheduler, the searcher and the callbacks hear of it (real TrialRuntimes writing into tmp_path)."""

from __future__ import annotations

import asyncio
import os

import pytest

import asynctune as at
from asynctune.algorithms.schedulers.fifo import FIFOScheduler
from asynctune.controller.actions import TrialActions
from asynctune.controller.ending import Ending
from asynctune.controller.outcomes import TrialOutcomes
from asynctune.controller.runtime import TrialRuntime, TrialStorageError
from asynctune.controller.searcher_driver import SearcherDriver
from asynctune.controller.table import TrialTable
from asynctune.core.resources import Placement
from asynctune.core.trial import Status, Trial
from asynctune.errors import StorageFull, TrialFailed
from asynctune.reporting.callback import CallbackList

PLACE = Placement(host="localhost", cpu=1)


class Heard:
    """One log of every hook, in the order the scheduler, searcher and callbacks were called."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []


class LoggingScheduler(FIFOScheduler):
    def __init__(self, heard: Heard, *, max_t: int | None = None) -> None:
        super().__init__()
        self.heard, self.max_t = heard, max_t

    def on_trial_complete(self, trial, result):
        self.heard.calls.append(("scheduler.complete", trial.trial_id))

    def on_trial_error(self, trial):
        self.heard.calls.append(("scheduler.error", trial.trial_id))


class LoggingSearcher(at.Searcher):
    def __init__(self, heard: Heard) -> None:
        super().__init__()
        self.heard = heard

    def suggest(self, trial_id):
        return {}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.heard.calls.append(("searcher.complete", trial_id, error))

    def on_trial_pruned(self, trial_id, result=None):
        self.heard.calls.append(("searcher.pruned", trial_id))


class LoggingCallback(at.Callback):
    def __init__(self, heard: Heard) -> None:
        self.heard = heard

    def on_trial_complete(self, trial):
        self.heard.calls.append(("callback.complete", trial.trial_id, trial.status.value))

    def on_trial_error(self, trial):
        self.heard.calls.append(("callback.error", trial.trial_id, trial.status.value))

    def on_trial_decision(self, trial, decision, detail=""):
        self.heard.calls.append(("callback.decision", trial.trial_id, decision))


class Setup:
    """TrialOutcomes wired as the controller wires it, with every collaborator real."""

    def __init__(self, tmp_path, *, n: int = 2, max_failures: int = 0, fail_fast: bool = False,
                 max_t: int | None = None) -> None:
        self.heard = Heard()
        self.wakeup = asyncio.Event()
        self.trials = [Trial(f"trial_{i:05d}", {"x": i}, index=i, path=str(tmp_path / f"trial_{i:05d}"))
                       for i in range(n)]
        self.scheduler = LoggingScheduler(self.heard, max_t=max_t)
        self.saved: list[at.Searcher] = []
        self.searching = SearcherDriver(LoggingSearcher(self.heard), self.saved.append)
        callbacks = CallbackList([LoggingCallback(self.heard)])
        self.table = TrialTable(self.trials, lambda t: TrialRuntime(
            t, metric="loss", mode="min", keep_checkpoints_num=None, changed=lambda *a, **k: None, callbacks=callbacks))
        for trial in self.trials:  # the tests say which trials wait
            self.table.unwait(trial)
        self.runtimes = {t: self.table.runtime(t) for t in self.trials}
        self.actions = TrialActions(self.trials, self.wakeup)
        self.ending = Ending(str(tmp_path), self.wakeup)
        self.killed: list[str] = []
        self.outcomes = TrialOutcomes(
            scheduler=self.scheduler, searching=self.searching, callbacks=callbacks, actions=self.actions,
            ending=self.ending, table=self.table, now=lambda: 42.0,
            kill=lambda runtime: self.killed.append(runtime.trial.trial_id), wakeup=self.wakeup,
            max_failures=max_failures, fail_fast=fail_fast)

    @property
    def waiting(self) -> list[Trial]:
        return self.table.candidates()

    def running(self, i: int) -> TrialRuntime:
        runtime = self.runtimes[self.trials[i]]
        runtime.start(PLACE, 0.0)
        return runtime


def test_a_completed_trial_is_terminated_then_scheduler_searcher_callbacks_hear_it_in_that_order(tmp_path):
    setup = Setup(tmp_path)
    runtime = setup.running(0)
    setup.outcomes.complete(runtime)
    assert (runtime.trial.status, runtime.trial.end_time) == (Status.TERMINATED, 42.0)
    assert setup.heard.calls == [("scheduler.complete", "trial_00000"), ("searcher.complete", "trial_00000", False),
                                 ("callback.complete", "trial_00000", "FINISHED")]
    assert setup.saved == [setup.searching.searcher]  # the searcher's state is saved after it heard


def test_a_trial_stopped_before_max_t_is_pruned_for_the_searcher(tmp_path):
    setup = Setup(tmp_path, max_t=10)
    early, late = setup.running(0), setup.running(1)
    early.trial.last_result = {"training_iteration": 3}
    late.trial.last_result = {"training_iteration": 10}
    for runtime in (early, late):
        setup.outcomes.stopping(runtime.trial)
        setup.outcomes.complete(runtime)
    searcher_heard = [c for c in setup.heard.calls if c[0].startswith("searcher")]
    assert searcher_heard == [("searcher.pruned", "trial_00000"), ("searcher.complete", "trial_00001", False)]


def test_a_failure_within_max_failures_is_retried_from_its_checkpoint_and_nobody_hears_an_error(tmp_path):
    setup = Setup(tmp_path, max_failures=1)
    runtime = setup.running(0)
    setup.outcomes.stopping(runtime.trial)  # a stop decided before the failure is void for the retry
    setup.outcomes.failed(runtime, "RuntimeError: boom", "Traceback: boom")
    trial = runtime.trial
    assert trial.status is Status.PENDING and trial in setup.waiting and trial.num_failures == 1
    assert setup.heard.calls == []
    with open(os.path.join(trial.path, "error.txt")) as f:
        assert "--- attempt 1: RuntimeError: boom" in f.read()
    # The second failure is one too many: ERROR, and everyone is told.
    for each in setup.trials:
        setup.table.unwait(each)
    runtime.ended()
    runtime.start(PLACE, 1.0)
    setup.outcomes.failed(runtime, "RuntimeError: again", "Traceback: again")
    assert (trial.status, trial.end_time, trial.num_failures) == (Status.ERROR, 42.0, 2)
    assert trial not in setup.waiting
    assert setup.heard.calls == [("scheduler.error", "trial_00000"), ("searcher.complete", "trial_00000", True),
                                 ("callback.error", "trial_00000", "ERROR")]
    assert setup.ending.why is None  # one failed trial does not end the experiment


def test_no_retry_once_the_experiment_is_ending(tmp_path):
    setup = Setup(tmp_path, max_failures=-1)  # unlimited retries, but the experiment is ending
    runtime = setup.running(0)
    setup.ending.stop(None, "time budget")
    setup.outcomes.failed(runtime, "RuntimeError: boom", "")
    assert runtime.trial.status is Status.ERROR


def test_fail_fast_ends_the_experiment_with_the_trials_error(tmp_path):
    setup = Setup(tmp_path, fail_fast=True)
    runtime = setup.running(1)
    setup.outcomes.failed(runtime, "ValueError: bad lr", "Traceback: bad lr")
    assert isinstance(setup.ending.fatal, TrialFailed) and setup.ending.fatal.trial_id == "trial_00001"
    assert setup.ending.why == "fail_fast: trial trial_00001 failed" and setup.wakeup.is_set()


def test_a_pause_waits_unless_a_resume_came_meanwhile(tmp_path):
    setup = Setup(tmp_path)
    waits, resumes = setup.running(0), setup.running(1)
    setup.outcomes.paused(waits)
    assert waits.trial.status is Status.PAUSED and waits.trial in setup.waiting
    resumes.resume_request = ({"x": 7}, None)
    setup.outcomes.paused(resumes)
    assert resumes.trial.status is Status.PENDING and resumes.trial.config == {"x": 7}
    assert resumes.trial in setup.waiting and setup.wakeup.is_set()
    assert setup.heard.calls == [("callback.decision", "trial_00001", "MUTATE")]  # resumed with a new config


def test_the_schedulers_actions_apply_after_its_hook_to_running_and_waiting_trials(tmp_path):
    setup = Setup(tmp_path)
    running, paused = setup.running(0), setup.running(1)
    setup.outcomes.paused(paused)
    setup.actions.stop_trial(running.trial)
    setup.actions.stop_trial(paused.trial)
    assert not running.stop_requested and paused.trial.status is Status.PAUSED  # queued, not applied
    setup.outcomes.apply_actions()
    assert running.stop_requested and running.trial.status is Status.RUNNING  # at its next result
    assert paused.trial.status is Status.EARLY_STOPPED and paused.trial not in setup.waiting  # at once
    assert ("searcher.pruned", "trial_00001") in setup.heard.calls  # ended before its end


def test_a_write_failure_kills_a_running_trial_once_and_fails_a_waiting_one_now(tmp_path):
    setup = Setup(tmp_path)
    running, waiting = setup.running(0), setup.running(1)
    running.run = object()  # launched: the executor gave it a run to kill
    error = TrialStorageError(running.trial.path, OSError(30, "Read-only file system"))
    setup.outcomes.write_failed(running, error)
    setup.outcomes.write_failed(running, error)
    assert setup.killed == ["trial_00000"] and running.write_error.startswith("could not write")
    assert running.trial.status is Status.RUNNING  # it fails when its worker is gone
    setup.outcomes.paused(waiting)
    setup.outcomes.write_failed(waiting, TrialStorageError(waiting.trial.path, OSError(30, "Read-only file system")))
    assert waiting.trial.status is Status.ERROR and waiting.trial not in setup.waiting
    assert "Read-only file system" in waiting.trial.error


def test_a_full_disk_stops_the_experiment_resumably_and_fails_no_trial(tmp_path):
    setup = Setup(tmp_path)
    runtime = setup.running(0)
    setup.outcomes.write_failed(runtime, StorageFull(os.path.join(runtime.trial.path, "result.jsonl")))
    assert runtime.trial.status is Status.RUNNING and setup.killed == []
    assert setup.ending.interrupted and isinstance(setup.ending.fatal, StorageFull)
    assert setup.ending.fatal.experiment_dir == str(tmp_path)
    # A trial whose start failed on the full disk waits for the resume.
    other = setup.running(1)
    setup.outcomes.not_started(other, StorageFull(other.trial.path))
    assert other.trial.status is Status.PENDING and other.trial in setup.waiting


@pytest.mark.parametrize("status", [Status.PENDING, Status.PAUSED])
def test_a_waiting_trial_stopped_by_the_scheduler_is_completed_now(tmp_path, status):
    setup = Setup(tmp_path)
    runtime = setup.runtimes[setup.trials[0]]
    if status is Status.PAUSED:
        runtime.start(PLACE, 0.0)
        setup.outcomes.paused(runtime)
    else:
        setup.table.wait(runtime.trial)
    setup.actions.stop_trial(runtime.trial)
    setup.outcomes.apply_actions()
    assert runtime.trial.status is Status.EARLY_STOPPED and runtime.trial not in setup.waiting
    # the STOP is recorded (decisions.jsonl, the console), then the scheduler hears the trial ended
    assert setup.heard.calls[:2] == [("callback.decision", "trial_00000", "STOP"), ("scheduler.complete", "trial_00000")]
