"""BOHB: TPE fitted per HyperBand budget."""

from __future__ import annotations

import numpy as np
import pytest

import asynctune as at
from asynctune.algorithms.search.bohb import BOHBSearch, _largest_budget_with
from asynctune.core.space import Space


def _searcher(**kwargs):
    searcher = BOHBSearch(metric="loss", mode="min", seed=0, **kwargs)
    searcher.set_search_properties(None, None, Space({"x": at.uniform(0, 1)}))
    return searcher


def _report(searcher, trial_id, budget, loss):
    searcher.on_trial_result(trial_id, {"training_iteration": budget, "loss": loss})


def test_the_model_uses_the_largest_budget_with_enough_points():
    observed = {1.0: {str(i): ({}, 0.0) for i in range(5)}, 3.0: {"a": ({}, 0.0), "b": ({}, 0.0)},
                9.0: {"a": ({}, 0.0)}}
    assert _largest_budget_with(observed, 2) == 3.0
    assert _largest_budget_with(observed, 1) == 9.0
    assert _largest_budget_with(observed, 6) is None


def test_suggestions_follow_the_good_region_of_the_largest_budget():
    """At budget 1 low x looks good, at budget 3 (more trustworthy) x near 0.8 is best."""
    searcher = _searcher(random_fraction=0.0, min_points_in_model=10)
    for i in range(30):
        trial_id = f"t{i}"
        config = searcher.suggest(trial_id)
        x = config["x"]
        _report(searcher, trial_id, 1, x)  # misleading at the small budget
        _report(searcher, trial_id, 3, abs(x - 0.8))
        searcher.on_trial_complete(trial_id, {"training_iteration": 3, "loss": abs(x - 0.8)})
    proposals = np.array([searcher.suggest(f"p{i}")["x"] for i in range(40)])
    # Fitted on budget 1 the proposals sit near 0 (|x - 0.8| ~ 0.78); on budget 3, near 0.8.
    assert np.median(np.abs(proposals - 0.8)) < 0.3
    assert np.median(proposals) > 0.5


def test_random_until_a_budget_has_enough_points():
    searcher = _searcher(random_fraction=0.0)  # min points: 1 parameter + 1 = 2
    searcher.suggest("a")
    _report(searcher, "a", 1, 0.5)
    assert searcher._propose([], [], np.random.default_rng(0)) is None  # 1 < 2 points: the prior
    searcher.suggest("b")
    _report(searcher, "b", 1, 0.1)
    assert searcher._propose([], [], np.random.default_rng(0)) is not None


def test_a_repeated_budget_replaces_the_observation():
    searcher = _searcher()
    searcher.suggest("a")
    _report(searcher, "a", 1, 0.9)
    _report(searcher, "a", 1, 0.2)  # reported again after a restart from an earlier checkpoint
    assert [loss for _, loss in searcher.budget_observations[1.0].values()] == [0.2]


@pytest.mark.parametrize("kwargs, message", [
    (dict(random_fraction=1.5), "random_fraction must be in"),
    (dict(min_points_in_model=0), "min_points_in_model must be an integer >= 1"),
    (dict(time_attr=""), "time_attr must be a result key"),
], ids=["random_fraction", "min_points", "time_attr"])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BOHBSearch(**kwargs)


def test_state_survives_save_and_restore(tmp_path):
    searcher = _searcher()
    for i in range(6):
        config = searcher.suggest(str(i))
        _report(searcher, str(i), 1, config["x"])
    searcher.save(str(tmp_path / "state"))
    restored = _searcher()
    restored.restore(str(tmp_path / "state"))
    assert restored.budget_observations == searcher.budget_observations
    assert restored.suggest("next") == searcher.suggest("next")


def _quadratic(config):
    for step in range(1, 10):
        at.report(loss=(config["x"] - 0.3) ** 2 + 1 / step)


def test_bohb_with_hyperband_end_to_end(tmp_path):
    import cloudpickle
    import sys

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    analysis = at.run(_quadratic, config={"x": at.uniform(0, 1)}, num_samples=12, metric="loss", mode="min",
                      search_alg=BOHBSearch(seed=0), scheduler=at.HyperBandScheduler(max_t=9, reduction_factor=3),
                      storage_path=str(tmp_path), verbose=0)
    assert len(analysis.trials) == 12
    assert all(t.status in (at.Status.FINISHED, at.Status.EARLY_STOPPED) for t in analysis.trials)
    assert any(t.num_results < 9 for t in analysis.trials)  # HyperBand stopped some early
    assert analysis.best_result["training_iteration"] == 9
