"""Ray's `ray.tune.search.hyperopt.HyperOptSearch`, with Ray's arguments, on asynctune's HyperOptSearch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from asynctune.algorithms.search.hyperopt_search import HyperOptSearch as _HyperOptSearch


class HyperOptSearch(_HyperOptSearch):
    """HyperOpt's TPE: `space` is a dict of `hp.*` expressions (nested hp.choice trees allowed),
    or None to use the Tuner's param_space; `random_state_seed` seeds it."""

    def __init__(self, space: Mapping[str, Any] | None = None, metric: str | None = None, mode: str | None = None,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None, n_initial_points: int = 20,
                 random_state_seed: int | None = None, gamma: float = 0.25) -> None:
        super().__init__(space, metric, mode, points_to_evaluate=points_to_evaluate,
                         n_initial_points=n_initial_points, seed=random_state_seed, gamma=gamma)
