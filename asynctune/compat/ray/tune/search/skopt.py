"""Ray's `ray.tune.search.skopt.SkOptSearch`, with Ray's arguments, on asynctune's SkOptSearch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from asynctune import SkOptSearch as _SkOptSearch

from ..._unsupported import unsupported


class SkOptSearch(_SkOptSearch):
    """Bayesian optimisation with scikit-optimize. The space comes from the Tuner's param_space;
    a `space=` of skopt dimensions and an `optimizer=` are not supported. `evaluated_rewards`
    with `points_to_evaluate` are not supported either: those points are evaluated."""

    def __init__(self, optimizer: Any = None, space: Any = None, metric: str | None = None, mode: str | None = None,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 evaluated_rewards: Sequence[float] | None = None, convert_to_python: bool = True) -> None:
        if optimizer is not None or space is not None:
            unsupported("SkOptSearch(optimizer=..., space=...)", "give the space as Tuner(param_space={...}); "
                        "asynctune builds the skopt Optimizer (asynctune.SkOptSearch's arguments choose it)")
        if evaluated_rewards is not None:
            unsupported("SkOptSearch(evaluated_rewards=...)", "leave it out: the points_to_evaluate are run")
        super().__init__(metric, mode, points_to_evaluate=points_to_evaluate)
