"""SkOptSearch: the space as skopt sees it, the liar for running trials, and that the GP optimises."""

from __future__ import annotations

import math

import pytest

from asynctune.algorithms.search.skopt_search import SkOptSearch, _dimension, _from_point, _to_point
from asynctune.core.space import Space, choice, lograndint, loguniform, qrandint, quniform, randint, uniform

pytest.importorskip("skopt")


def test_space_maps_onto_skopt_dimensions() -> None:
    space = Space({"lr": loguniform(1e-4, 1e-1), "n": randint(1, 10), "big": lograndint(1, 1000),
                   "step": qrandint(0, 20, 5), "q": quniform(0, 1, 0.25), "c": choice(["a", {"x": uniform(0, 1)}])})
    dims = {p.name: _dimension(p) for p in space.parameters}
    assert dims["lr"].prior == "log-uniform" and dims["lr"].bounds == (1e-4, 1e-1)
    assert dims["n"].bounds == (1, 9)  # randint's high is exclusive
    assert dims["big"].prior == "log-uniform"
    assert dims["step"].bounds == (0, 4)  # the index of the multiple of 5
    assert dims["c"].categories == (0, 1)
    assert dims["c/<1>/x"].bounds == (0, 1)


def test_points_round_trip_and_inactive_parameters_sit_still() -> None:
    space = Space({"step": qrandint(0, 20, 5), "q": quniform(0, 1, 0.25),
                   "c": choice(["a", {"x": uniform(0, 1)}]), "lr": loguniform(1e-4, 1e-1)})
    params = space.parameters
    values = {("step",): 15, ("q",): 0.5, ("c",): 0, ("lr",): 0.01}
    point = _to_point(params, values)
    assert point[0] == 3 and point[3] == 0.5  # the branch parameter is at its midpoint
    assert _from_point(params, point) == values  # and is dropped again: its branch is not chosen
    assert _from_point(params, [4, 0.3, 1, 0.2, 0.01])[("q",)] == 0.25  # quantized on the way back


def quadratic(config: dict) -> float:
    return (config["x"] - 0.3) ** 2 + (math.log10(config["y"]) + 2) ** 2 / 4


def test_gp_finds_the_minimum_of_a_smooth_function() -> None:
    searcher = SkOptSearch(metric="loss", mode="min", n_initial_points=5, seed=0)
    searcher.set_search_properties(None, None, Space({"x": uniform(0, 1), "y": loguniform(1e-4, 1)}))
    best = math.inf
    for i in range(15):
        config = searcher.suggest(str(i))
        best = min(best, quadratic(config))
        searcher.on_trial_complete(str(i), {"loss": quadratic(config)})
    assert best < 2e-3


@pytest.mark.parametrize("strategy, lie", [("cl_min", 0.0), ("cl_mean", 0.5), ("cl_max", 1.0)])
def test_running_trials_are_told_to_the_model_with_a_lie(strategy: str, lie: float, monkeypatch) -> None:
    import skopt

    told = []
    original = skopt.Optimizer.tell
    monkeypatch.setattr(skopt.Optimizer, "tell", lambda self, xs, ys: (told.append((xs, ys)), original(self, xs, ys))[1])
    searcher = SkOptSearch(metric="loss", mode="min", n_initial_points=3, base_estimator="ET",
                           liar_strategy=strategy, seed=0)
    searcher.set_search_properties(None, None, Space({"x": uniform(0, 1)}))
    for i, loss in enumerate([0.0, 1.0, float("nan"), 0.5]):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": loss})
    running = searcher.suggest("running")["x"]
    searcher.suggest("next")
    xs, ys = told[-1]
    assert ys == [0.0, 1.0, 1.0, 0.5, lie]  # NaN became the worst loss; the running trial the lie
    assert xs[-1] == [running]


def test_gp_hedge_is_the_default_and_carries_its_gains_from_one_suggestion_to_the_next(monkeypatch) -> None:
    # gp_minimize's hedge learns which of EI, PI and LCB proposes well. The Optimizer is rebuilt
    # for each suggestion, so the gains must be handed over, or the hedge is a blind random pick.
    import numpy as np
    import skopt

    seen = []  # (gains when the rebuilt optimizer is told the observations, gains after)
    original = skopt.Optimizer.tell

    def tell(self, xs, ys):
        before = np.array(self.gains_)
        result = original(self, xs, ys)
        seen.append((before, np.array(self.gains_)))
        return result

    monkeypatch.setattr(skopt.Optimizer, "tell", tell)
    searcher = SkOptSearch(metric="loss", mode="min", n_initial_points=3, base_estimator="ET",
                           acq_optimizer_kwargs={"n_points": 200}, seed=0)
    assert searcher.acq_func == "gp_hedge"
    searcher.set_search_properties(None, None, Space({"x": uniform(0, 1), "y": uniform(0, 1)}))
    for i in range(7):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": quadratic({"x": config["x"], "y": 10 ** (4 * config["y"] - 4)})})
    assert len(seen) == 4  # one rebuilt optimizer per suggestion after the 3 initial points
    assert not seen[0][0].any()  # the first starts from zero gains ...
    for (_, after), (before, _) in zip(seen, seen[1:]):
        assert np.array_equal(before, after)  # ... each next one from where the last ended
    assert seen[-1][1].any() and not np.allclose(seen[-1][1], seen[1][1])
