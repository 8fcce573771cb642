"""Ray's `ray.tune.search.optuna.OptunaSearch`, with Ray's arguments, on asynctune's OptunaSearch."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from asynctune import OptunaSearch as _OptunaSearch

from ..._unsupported import unsupported


class OptunaSearch(_OptunaSearch):
    """Any Optuna sampler (TPE by default). `space` is a dict of Optuna distributions
    ({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}), a define-by-run
    function `space(trial)` that calls `trial.suggest_*` and may return a dict of constants, or
    None to use the Tuner's param_space. `metric`/`mode` may be lists (several objectives)."""

    def __init__(self, space: Mapping[str, Any] | Callable[[Any], Any] | None = None,
                 metric: str | list[str] | None = None, mode: str | list[str] | None = None,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None, sampler: Any = None,
                 seed: int | None = None, evaluated_rewards: Sequence[Any] | None = None) -> None:
        if evaluated_rewards is not None:
            unsupported("OptunaSearch(evaluated_rewards=...)", "leave it out: the points_to_evaluate are run")
        if isinstance(space, Mapping):
            space = DistributionSpace(space)
        super().__init__(sampler=sampler, space=space, metric=metric, mode=mode, seed=seed,
                         points_to_evaluate=points_to_evaluate)


class DistributionSpace:
    """A dict of Optuna distributions as a define-by-run function."""

    def __init__(self, distributions: Mapping[str, Any]) -> None:
        import optuna.distributions as od
        for name, dist in distributions.items():
            if not isinstance(dist, (od.FloatDistribution, od.IntDistribution, od.CategoricalDistribution)):
                raise ValueError(f"OptunaSearch: space[{name!r}] must be an Optuna Float-, Int- or "
                                 f"CategoricalDistribution, got {dist!r}; or pass a define-by-run function")
        self.distributions = dict(distributions)

    def __call__(self, trial: Any) -> None:
        import optuna.distributions as od
        for name, dist in self.distributions.items():
            if isinstance(dist, od.FloatDistribution):
                trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
            elif isinstance(dist, od.IntDistribution):
                trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                trial.suggest_categorical(name, dist.choices)
