"""What every scheduler of issue 4 promises (the shared tools are in tests/helpers/schedulers.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from asynctune import (
    CONTINUE, PAUSE, STOP, ASHAScheduler, HyperBandScheduler, MedianStoppingRule, MOASHAScheduler, Mutate,
    PopulationBasedTraining, Scheduler, Status, uniform,
)
from tests.helpers.schedulers import decide, make_trials, started

# --- the contract ---------------------------------------------------------------------------------

SCHEDULERS: dict[str, Callable[..., Scheduler]] = {
    "median": lambda **kw: MedianStoppingRule(grace_period=1, min_samples_required=1, **kw),
    "asha-stopping": lambda **kw: ASHAScheduler(max_t=9, reduction_factor=3, **kw),
    "asha-promotion": lambda **kw: ASHAScheduler(max_t=9, reduction_factor=3, variant="promotion", **kw),
    "hyperband": lambda **kw: HyperBandScheduler(max_t=9, reduction_factor=3, **kw),
    "mo-asha-stopping": lambda **kw: MOASHAScheduler(max_t=9, reduction_factor=3, **kw),  # one metric works too
    "mo-asha-promotion": lambda **kw: MOASHAScheduler(max_t=9, reduction_factor=3, variant="promotion", **kw),
    "pbt": lambda **kw: PopulationBasedTraining(perturbation_interval=1, hyperparam_mutations={"x": uniform(0, 10)},
                                                seed=0, **kw),
}
ALL = pytest.mark.parametrize("make", SCHEDULERS.values(), ids=SCHEDULERS.keys())


@ALL
@pytest.mark.parametrize("metric, mode, missing", [(None, "min", "metric="), ("loss", None, "mode="),
                                                   (None, None, "metric= and mode=")],
                         ids=["no-metric", "no-mode", "neither"])
def test_validate_says_where_to_pass_metric_and_mode(make, metric, mode, missing):
    scheduler = make(metric=metric, mode=mode)
    with pytest.raises(ValueError, match=f"pass {missing} here or to run"):
        scheduler.validate()


@ALL
def test_metric_and_mode_from_run_complete_the_settings(make):
    scheduler = make()
    scheduler.set_search_properties("loss", "min")
    scheduler.validate()
    assert (scheduler.metric, scheduler.mode) == ("loss", "min")


@ALL
def test_own_metric_wins_over_runs(make):
    scheduler = make(metric="acc", mode="max")
    scheduler.set_search_properties("loss", "min")
    assert (scheduler.metric, scheduler.mode) == ("acc", "max")


@ALL
def test_bad_mode_is_rejected(make):
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        make(metric="loss", mode="minimize")


@ALL
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "oops", None], ids=["nan", "inf", "-inf", "str", "none"])
async def test_non_finite_metric_never_crashes(make, bad):
    scheduler = make(metric="loss", mode="min")
    trials = make_trials(6)
    await started(scheduler, trials)
    try:
        for it in range(1, 5):
            for i, trial in enumerate(trials):
                if trial.status is Status.RUNNING:
                    trial.checkpoint = f"/ckpt/{trial.trial_id}/{it}"
                    value = bad if i == 0 else float(i)
                    decision = await decide(scheduler, trial, {"loss": value, "training_iteration": it})
                    assert decision in (CONTINUE, PAUSE, STOP) or isinstance(decision, Mutate)
                    if decision is STOP:
                        trial.status = Status.TERMINATED
    finally:
        await scheduler.close()


@ALL
async def test_results_without_the_metric_continue(make):
    scheduler = make(metric="loss", mode="min")
    trials = make_trials(4)
    await started(scheduler, trials)
    try:
        for it in range(1, 9):
            for trial in trials:
                assert await decide(scheduler, trial, {"other": 1.0, "training_iteration": it}) is CONTINUE
    finally:
        await scheduler.close()
