"""Ray's `ray.tune.schedulers`: asynctune's schedulers under Ray's names, arguments and defaults."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import asynctune as _at

from ..._unsupported import module_getattr, unsupported

logger = logging.getLogger(__name__)

FIFOScheduler = _at.FIFOScheduler


class AsyncHyperBandScheduler(_at.ASHAScheduler):
    """Ray's ASHA (`ASHAScheduler` is the same class), with Ray's defaults: max_t=100,
    grace_period=1, reduction_factor=4, brackets=1."""

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 100, grace_period: float = 1, reduction_factor: float = 4, brackets: int = 1,
                 stop_last_trials: bool = True) -> None:
        super().__init__(time_attr, metric, mode, max_t, grace_period, reduction_factor, brackets, stop_last_trials)


ASHAScheduler = AsyncHyperBandScheduler


class HyperBandScheduler(_at.HyperBandScheduler):
    """Ray's synchronous HyperBand: as asynctune's, but brackets fill in Ray's order, s = 0, 1,
    ..., s_max (the bracket with the fewest trials and no early stopping first), not the paper's
    s_max first."""

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 81, reduction_factor: float = 3, stop_last_trials: bool = True) -> None:
        super().__init__(time_attr, metric, mode, max_t, reduction_factor, stop_last_trials,
                         bracket_order="gentle_first")


class HyperBandForBOHB(HyperBandScheduler):
    """Ray's HyperBand for BOHB: pair it with `tune.search.bohb.TuneBOHB`."""


class MedianStoppingRule(_at.MedianStoppingRule):
    """Ray's median stopping rule, with Ray's defaults: time_attr="time_total_s", grace_period=60
    seconds (asynctune's own defaults count training iterations)."""

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 grace_period: float = 60.0, min_samples_required: int = 3, min_time_slice: int = 0,
                 hard_stop: bool = True) -> None:
        super().__init__(time_attr, metric, mode, grace_period, min_samples_required, hard_stop)
        if min_time_slice:
            logger.debug("MedianStoppingRule: min_time_slice is ignored (trials are not time-sliced)")


class PopulationBasedTraining(_at.PopulationBasedTraining):
    """Ray's PBT, with Ray's defaults: time_attr="time_total_s", perturbation_interval=60."""

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 perturbation_interval: float = 60.0, burn_in_period: float = 0.0,
                 hyperparam_mutations: Mapping[str, Any] | None = None, quantile_fraction: float = 0.25,
                 resample_probability: float = 0.25, perturbation_factors: tuple[float, float] = (1.2, 0.8),
                 custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 log_config: bool = True, require_attrs: bool = True, synch: bool = False) -> None:
        if synch:
            unsupported("PopulationBasedTraining(synch=True)",
                        "asynctune's PBT is asynchronous (Ray's default, synch=False)")
        super().__init__(time_attr, metric, mode, perturbation_interval, burn_in_period, hyperparam_mutations,
                         quantile_fraction, resample_probability, perturbation_factors, custom_explore_fn)


_BY_NAME: dict[str, Callable[..., Any]] = {
    "fifo": FIFOScheduler, "async_hyperband": AsyncHyperBandScheduler, "asha": AsyncHyperBandScheduler,
    "median_stopping_rule": MedianStoppingRule, "hyperband": HyperBandScheduler, "hb_bohb": HyperBandForBOHB,
    "pbt": PopulationBasedTraining,
}
_NOT_MIRRORED = {"pb2": "PB2", "pbt_replay": "PopulationBasedTrainingReplay",
                 "resource_changing": "ResourceChangingScheduler"}


def create_scheduler(scheduler: str, **kwargs: Any) -> Any:
    """Ray's scheduler by name, as `tune.run(scheduler="asha")` takes it: "fifo", "async_hyperband"
    (or "asha"), "median_stopping_rule", "hyperband", "hb_bohb", "pbt"; `kwargs` go to the class.

    Example:
        >>> create_scheduler("asha", max_t=20, grace_period=2)
    """
    if scheduler in _NOT_MIRRORED:
        return __getattr__(_NOT_MIRRORED[scheduler])  # raises, naming the asynctune way
    if scheduler not in _BY_NAME:
        raise ValueError(f"unknown scheduler name {scheduler!r}; Ray's names are {sorted([*_BY_NAME, *_NOT_MIRRORED])}")
    return _BY_NAME[scheduler](**kwargs)


_CUSTOM = ("write an asynctune Scheduler (asynctune.Scheduler: on_trial_result(trial, result) -> CONTINUE / "
           "PAUSE / STOP; docs/schedulers/write-your-own.md)")
__getattr__ = module_getattr(__name__, {
    "TrialScheduler": _CUSTOM, "PB2": "use PopulationBasedTraining", "PopulationBasedTrainingReplay":
    "replay a PBT schedule from experiment.json's lineage by hand", "ResourceChangingScheduler":
    "resources are fixed per trial: give them with tune.with_resources"
})
