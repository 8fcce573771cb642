"""The space-filling start: every slice of every numeric range once, every category in turn,
branch parameters only where their branch is taken; and TPESearch's use of it."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from asynctune.algorithms.search.model_based import is_active
from asynctune.algorithms.search.space_filling import latin_hypercube
from asynctune.algorithms.search.tpe import TPESearch
from asynctune.core.space import Space, choice, lograndint, loguniform, quniform, randint, randn, uniform


def slices(values, n: int, low: float, high: float) -> list[int]:
    return sorted(int((v - low) / (high - low) * n) for v in values)


def test_each_numeric_range_gets_one_point_per_slice_in_its_own_scale() -> None:
    space = Space({"x": uniform(-2.0, 6.0), "lr": loguniform(1e-5, 1e-1), "k": randint(0, 8),
                   "units": lograndint(1, 256)})
    points = latin_hypercube(space.parameters, 8, np.random.default_rng(0))
    assert len(points) == 8
    assert slices([p[("x",)] for p in points], 8, -2.0, 6.0) == list(range(8))
    assert slices([math.log10(p[("lr",)]) for p in points], 8, -5.0, -1.0) == list(range(8))
    assert sorted(p[("k",)] for p in points) == list(range(8))  # 8 integers, 8 slices: each once
    units = [p[("units",)] for p in points]  # 1..255 on a log scale: small and large values alike
    assert all(isinstance(u, int) and 1 <= u <= 255 for u in units)
    assert sum(u < 16 for u in units) >= 3 and sum(u >= 16 for u in units) >= 3


def test_points_are_spread_further_than_random_ones() -> None:
    # The closest pair of a maximin design is farther apart than that of random points.
    space = Space({"a": uniform(0, 1), "b": uniform(0, 1)})
    rng = np.random.default_rng(0)

    def closest(points: np.ndarray) -> float:
        gaps = np.linalg.norm(points[:, None] - points[None], axis=2)
        return float(gaps[np.triu_indices(len(points), 1)].min())

    designed = [closest(np.array([[p[("a",)], p[("b",)]] for p in latin_hypercube(space.parameters, 8, rng)]))
                for _ in range(50)]
    random = [closest(rng.random((8, 2))) for _ in range(50)]
    assert np.median(designed) > 2 * np.median(random), (np.median(designed), np.median(random))


def test_every_category_is_taken_equally_often() -> None:
    space = Space({"kind": choice(["a", "b", "c"]), "flag": choice([True, False]), "x": uniform(0, 1)})
    for seed in range(5):
        points = latin_hypercube(space.parameters, 7, np.random.default_rng(seed))
        assert sorted(Counter(p[("kind",)] for p in points).values()) == [2, 2, 3]
        assert sorted(Counter(p[("flag",)] for p in points).values()) == [3, 4]


def test_branch_parameters_exist_exactly_where_their_branch_is_taken() -> None:
    space = Space({"model": choice([{"name": "linear", "C": loguniform(1e-3, 1e3)},
                                    {"name": "forest", "depth": randint(1, 20), "features": uniform(0.1, 1.0)},
                                    {"name": "plain"}]),
                   "scale": uniform(0, 1)})
    points = latin_hypercube(space.parameters, 9, np.random.default_rng(0))
    assert Counter(p[("model",)] for p in points) == {0: 3, 1: 3, 2: 3}
    for p in points:
        assert all(is_active(param, p) == (param.path in p) for param in space.parameters), p


def test_tpe_starts_with_the_design_then_the_model() -> None:
    # 8 startup trials over 4 kinds: each kind twice, one x per eighth; then suggestions follow
    # the model (x near the best, 0.9) instead of slices.
    searcher = TPESearch(seed=3)
    searcher.set_search_properties("loss", "min", Space({"kind": choice(["a", "b", "c", "d"]), "x": uniform(0, 1),
                                                         "noise": randn(0, 1), "q": quniform(0, 1, 0.1)}))
    configs = []
    for i in range(30):
        configs.append(searcher.suggest(str(i)))
        searcher.on_trial_complete(str(i), {"loss": abs(configs[-1]["x"] - 0.9)})
    start = configs[:8]
    assert Counter(c["kind"] for c in start) == {"a": 2, "b": 2, "c": 2, "d": 2}
    assert slices([c["x"] for c in start], 8, 0, 1) == list(range(8))
    assert all(math.isfinite(c["noise"]) for c in start)  # randn has no range: drawn from its prior
    assert np.median([abs(c["x"] - 0.9) for c in configs[15:]]) < 0.1


def test_startup_trials_beyond_the_design_are_random() -> None:
    # Failed trials do not count as observations, so the start may ask for more than it planned.
    searcher = TPESearch(seed=0, n_startup_trials=4)
    searcher.set_search_properties("loss", "min", Space({"x": uniform(0, 1)}))
    xs = []
    for i in range(7):
        xs.append(searcher.suggest(str(i))["x"])
        searcher.on_trial_complete(str(i), None, error=True)
    assert slices(xs[:4], 4, 0, 1) == [0, 1, 2, 3]
    assert all(0 <= x <= 1 for x in xs[4:])


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_designs(n: int) -> None:
    space = Space({"x": uniform(0, 1), "kind": choice(["a", "b"])})
    points = latin_hypercube(space.parameters, n, np.random.default_rng(0))
    assert len(points) == n and all(set(p) == {("x",), ("kind",)} for p in points)
