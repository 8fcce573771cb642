"""Several metrics: run(metric=[...], mode=[...]), its checks before any trial, the metric check on
the first result, and the analysis' Pareto front, with real worker processes."""

from __future__ import annotations

import math
import os

import pytest

import asynctune as at
from asynctune.algorithms.base import Scheduler, Searcher
from asynctune.trial import CONTINUE


def two_objectives(config):
    """A trial whose last result is (x, 1 - x) for a config x: every point is on one front,
    and `lift` moves a point up, dominated by the point with the same x."""
    x = config["x"]
    for step in range(2):
        at.report(error=x + config.get("lift", 0.0), latency=1 - x + config.get("lift", 0.0), step=step)


def _no_trial_started(storage):
    if not os.path.exists(storage):
        return True
    return not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


BAD = {
    "modes shorter than metrics": (dict(metric=["error", "latency"], mode=["min"]), "one mode per metric"),
    "duplicate metric": (dict(metric=["error", "error"], mode="min"), "each metric may appear once"),
    "bad mode in list": (dict(metric=["error", "latency"], mode=["min", "lowest"]), "each mode must be 'min' or 'max'"),
    "modes without metrics": (dict(metric="error", mode=["min", "min"]), "a list of modes needs a list of metrics"),
    "empty metric list": (dict(metric=[], mode=[]), "non-empty list of metric names"),
    "metric not a name": (dict(metric=["error", 3], mode="min"), "non-empty list of metric names"),
    "single-objective scheduler": (dict(metric=["error", "latency"], mode="min", scheduler=at.ASHAScheduler()),
                                   "ASHAScheduler ranks trials by one metric.*MOASHAScheduler"),
    "single-objective searcher": (dict(metric=["error", "latency"], mode="min", search_alg=at.TPESearch()),
                                  "TPESearch ranks trials by one metric.*OptunaSearch"),
    "single-objective searcher behind a limiter": (
        dict(metric=["error", "latency"], mode="min", search_alg=at.ConcurrencyLimiter(at.SkOptSearch(), 2)),
        "SkOptSearch ranks trials by one metric.*RandomSearch"),
    "median stopping": (dict(metric=["error", "latency"], mode="min", scheduler=at.MedianStoppingRule()),
                        "MedianStoppingRule ranks trials by one metric"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_objectives_fail_before_any_trial(case, storage):
    kwargs, message = case
    with pytest.raises(ValueError, match=message):
        at.run(two_objectives, config={"x": at.uniform(0, 1)}, storage_path=storage, verbose=0, **kwargs)
    assert _no_trial_started(storage)


def test_objectives_are_checked_where_algorithms_are_built():
    with pytest.raises(ValueError, match="ASHAScheduler optimises one metric"):
        at.ASHAScheduler(metric=["error", "latency"], mode="min")
    with pytest.raises(ValueError, match="TPESearch optimises one metric"):
        at.TPESearch(metric=["error", "latency"], mode=["min", "max"])


def test_a_single_objective_scheduler_with_its_own_metric_ranks_by_it(storage):
    """run()'s several metrics do not reach a scheduler given its own: it ranks by that one,
    with the mode run() gave it."""
    scheduler = at.ASHAScheduler(metric="latency", max_t=2, grace_period=1)
    analysis = at.run(two_objectives, config={"x": at.grid_search([0.2, 0.8])}, metric=["error", "latency"],
                      mode=["min", "max"], scheduler=scheduler, storage_path=storage, verbose=0)
    assert (scheduler.metric, scheduler.mode) == ("latency", "max")
    assert len(analysis.trials) == 2


class _RecordingScheduler(Scheduler):
    multi_objective = True

    def on_trial_result(self, trial, result):
        return CONTINUE


class _RecordingSearcher(Searcher):
    multi_objective = True

    def suggest(self, trial_id):
        return {"x": 0.5}


def test_multi_objective_algorithms_get_lists(storage):
    scheduler, searcher = _RecordingScheduler(), _RecordingSearcher()
    at.run(two_objectives, metric=("error", "latency"), mode="min", scheduler=scheduler, search_alg=searcher,
           storage_path=storage, verbose=0)
    assert (scheduler.metric, scheduler.mode) == (["error", "latency"], ["min", "min"])
    assert (searcher.metric, searcher.mode) == (["error", "latency"], ["min", "min"])


def test_one_metric_in_a_list_is_one_metric(storage):
    analysis = at.run(two_objectives, config={"x": at.grid_search([0.2, 0.8])}, metric=["error"], mode=["min"],
                      scheduler=at.ASHAScheduler(max_t=2), storage_path=storage, verbose=0)
    assert analysis.best_config == {"x": 0.2}


def test_every_objective_is_checked_on_the_first_result(storage):
    with pytest.raises(ValueError, match=r"metric='latncy' is not in trial_00000's first result; it reported: error, "
                                         r"latency, step.*nor is 'eror'"):
        at.run(two_objectives, config={"x": 0.5}, metric=["error", "latncy", "eror"], mode="min",
               storage_path=storage, verbose=0)


def test_random_search_runs_with_two_metrics_and_returns_the_front(storage):
    """Random search ignores the metric, so it just works; the front is by last results."""
    space = {"x": at.grid_search([0.1, 0.5, 0.9]), "lift": at.grid_search([0.0, 0.3])}
    analysis = at.run(two_objectives, config=space, metric=["error", "latency"], mode=["min", "min"],
                      storage_path=storage, verbose=0)
    front = analysis.pareto_front()
    assert sorted(t.config["x"] for t in front) == [0.1, 0.5, 0.9]
    assert all(t.config["lift"] == 0.0 for t in front)
    frame = analysis.dataframe()
    assert {"error", "latency", "pareto_front"} <= set(frame.columns)
    assert frame["pareto_front"].sum() == 3
    with pytest.raises(ValueError, match="several metrics.*pareto_front()"):
        analysis.best_config
    assert analysis.get_best_trial("latency").config == {"x": 0.9, "lift": 0.0}  # run()'s mode for it
    # read back from the directory: the same front; another pair of objectives is another front
    later = at.ExperimentAnalysis(analysis.experiment_dir)
    assert [t.trial_id for t in later.pareto_front()] == [t.trial_id for t in front]
    assert [t.config for t in later.pareto_front(["error", "latency"], ["max", "max"])] == \
        [{"x": 0.1, "lift": 0.3}, {"x": 0.5, "lift": 0.3}, {"x": 0.9, "lift": 0.3}]
    assert later.summary()["pareto_front"] == 3


def test_threshold_stop_uses_each_metrics_mode(storage):
    """stop={"error": 0.3} with mode "min" for error means "down to 0.3", as with one metric."""
    analysis = at.run(two_objectives, config={"x": at.grid_search([0.1, 0.9])}, metric=["error", "latency"],
                      mode=["min", "max"], stop={"error": 0.3}, storage_path=storage, verbose=0)
    iterations = {t.config["x"]: t.iteration for t in analysis.trials}
    assert iterations == {0.1: 1, 0.9: 2}


def test_pareto_front_leaves_out_missing_and_non_finite(storage):
    def train(config):
        at.report(error=config["error"], latency=1.0)

    analysis = at.run(train, config={"error": at.grid_search([0.5, math.nan, 0.7])}, metric=["error", "latency"],
                      mode="min", storage_path=storage, verbose=0)
    assert [t.config["error"] for t in analysis.pareto_front()] == [0.5]
