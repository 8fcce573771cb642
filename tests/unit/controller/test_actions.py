"""The controller applies what a scheduler asks for after the scheduler's hook returns, and
run()'s options are stated once (RunOptions) with run_async taking run()'s parameters."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any

import cloudpickle
import pytest

import asynctune as at
from asynctune import CONTINUE, PAUSE, Scheduler, Status
from asynctune.options import RunOptions
from tests.helpers.simulated import table

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def three_reports(config):
    for i in range(3):
        at.report(score=config["x"] + i)


class StopsAPausedTrial(Scheduler):
    """Pauses the first trial at its first result; on the second trial's first result, stops
    the paused first trial through the control (which ends it: on_trial_complete)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # how many of this scheduler's hooks are running now
        self.log: list[tuple[str, str, int]] = []

    def on_trial_result(self, trial, result: dict[str, Any]):
        self.depth += 1
        try:
            self.log.append(("result", trial.trial_id, self.depth))
            first = self.control.trials[0]
            if trial is first and trial.num_results == 1:
                return PAUSE
            if trial is not first and first.status is Status.PAUSED:
                self.control.stop_trial(first)
                self.log.append(("asked to stop", first.trial_id, self.depth))
            return CONTINUE
        finally:
            self.depth -= 1

    def on_trial_complete(self, trial, result) -> None:
        self.depth += 1
        self.log.append(("complete", trial.trial_id, self.depth))
        self.depth -= 1

    def choose_trial_to_run(self, candidates):
        return next((t for t in candidates if t.status is Status.PENDING), None)  # never resume


def test_an_action_is_applied_after_the_hook_returns_not_inside_it(simulated):
    scheduler = StopsAPausedTrial()
    analysis = simulated(table(2, epochs=3), scheduler=scheduler, max_concurrent_trials=1, name="actions")
    statuses = {t.trial_id: t.status for t in analysis.trials}
    assert statuses == {"trial_00000": Status.EARLY_STOPPED, "trial_00001": Status.FINISHED}  # stopped while paused
    asked = scheduler.log.index(("asked to stop", "trial_00000", 1))
    completed = scheduler.log.index(("complete", "trial_00000", 1))
    assert completed > asked
    # No hook ran inside another: every hook saw depth 1 (the old controller completed the
    # paused trial inside on_trial_result, at depth 2).
    assert all(depth == 1 for _, _, depth in scheduler.log), scheduler.log


def test_run_options_state_run_parameters_once():
    run_parameters = inspect.signature(at.run).parameters
    fields = {f.name: f for f in dataclasses.fields(RunOptions)}
    options = {name: p for name, p in run_parameters.items() if name not in ("trainable", "resume")}
    assert list(options) == [name for name in fields if name in options]  # same order
    assert set(options) == set(fields)
    for name, parameter in options.items():
        assert parameter.default == fields[name].default, name
        assert parameter.annotation == fields[name].type, name
    assert inspect.signature(at.run_async).parameters == run_parameters


async def test_run_async_takes_run_parameters_and_checks_them(tmp_path):
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        await at.run_async(three_reports, num_samples=0, storage_path=str(tmp_path), verbose=0)
