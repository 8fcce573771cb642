"""Stop criteria: when a trial, or the whole experiment, has trained enough."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .objectives import objective_pairs


class Stopper:
    """Decides when trials stop; subclass it or pass a dict or callable to run(stop=...).

    Example:
        >>> class Plateau(Stopper):
        ...     def __call__(self, trial_id, result):
        ...         return result["training_iteration"] >= 50
    """

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True stops this trial after this result."""
        return False

    def stop_all(self) -> bool:
        """True ends the whole experiment (checked after every result)."""
        return False

    def stop_iteration(self, *, after: int) -> int | None:
        """The training_iteration after `after` at which this stops every trial, if that can be
        known in advance (None: any result may stop one). A pipelined trial waits for the answer
        to that result, so it stops there exactly."""
        return None


class ThresholdStopper(Stopper):
    """Stop a trial once any reported key reaches its threshold.

    A key reaches its threshold when `result[key] >= value`, except the experiment's own metric
    (or one of its metrics) under mode="min", which reaches it when `result[key] <= value` (stop={"loss": 0.05} means
    "stop once the loss is down to 0.05").
    """

    def __init__(self, thresholds: Mapping[str, float], *, metric: str | list[str] | None = None,
                 mode: str | list[str] | None = None) -> None:
        for key, value in thresholds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"stop: the threshold for {key!r} must be a number, got {value!r}")
        self.thresholds = dict(thresholds)
        self.metric, self.mode = metric, mode
        self._mode_by_metric = dict(objective_pairs(metric, mode)) if metric is not None else {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        for key, threshold in self.thresholds.items():
            value = result.get(key)
            if value is None:
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if math.isnan(value):
                continue
            if self._mode_of(key) == "min":
                if value <= threshold:
                    return True
            elif value >= threshold:
                return True
        return False

    def stop_iteration(self, *, after: int) -> int | None:
        """Where the training_iteration threshold stops a trial (None: there is none, or it is the
        metric minimised, so any result may stop it)."""
        threshold = self.thresholds.get("training_iteration")
        if threshold is None or self._mode_of("training_iteration") == "min":
            return None
        return max(math.ceil(threshold), after + 1)

    def _mode_of(self, key: str) -> str | None:
        """The mode run() gave `key` if it is one of the experiment's metrics (one or several)."""
        return self._mode_by_metric.get(key)


class FunctionStopper(Stopper):
    def __init__(self, fn: Callable[[str, dict[str, Any]], bool]) -> None:
        self.fn = fn

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(self.fn(trial_id, result))


def make_stopper(stop: Any, *, metric: str | list[str] | None, mode: str | list[str] | None) -> Stopper | None:
    """Turn run()'s `stop` argument into a Stopper (None when there is none)."""
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, Mapping):
        return ThresholdStopper(stop, metric=metric, mode=mode)
    if callable(stop):
        return FunctionStopper(stop)
    raise ValueError(f"stop must be a dict of thresholds, a callable(trial_id, result) or a Stopper, got {stop!r}")
