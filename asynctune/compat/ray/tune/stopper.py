"""Ray's stoppers, `ray.tune.stopper`: `Stopper` is asynctune's (the same two methods)."""

from __future__ import annotations

import collections
import difflib
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from asynctune import Stopper

from .._unsupported import module_getattr

logger = logging.getLogger(__name__)


class DictStopper(Stopper):
    """Ray's stop dict: a trial stops once any key reaches its value, result[key] >= value (a
    flag such as {"done": True} stops when the result's flag is true)."""

    def __init__(self, criteria: Mapping[str, Any]) -> None:
        for key, value in criteria.items():
            if not isinstance(value, (bool, int, float)):
                raise ValueError(f"stop: the value for {key!r} must be a number or a bool, got {value!r}")
        self.criteria = dict(criteria)
        self._missing_told: set[str] = set()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        for key, threshold in self.criteria.items():
            value = result.get(key)
            if value is None:
                self._tell_missing(key, trial_id, result)
                continue
            if isinstance(threshold, bool):
                if bool(value) == threshold:
                    return True
            elif isinstance(value, (int, float)) and value >= threshold:
                return True
        return False


    def _tell_missing(self, key: str, trial_id: str, result: dict[str, Any]) -> None:
        """As Ray does, once per key: a misspelt key would otherwise never stop anything, silently."""
        if key in self._missing_told or key == "done" or key in result:
            return
        self._missing_told.add(key)
        close = difflib.get_close_matches(key, list(result), n=1)
        logger.warning("stop=%r: a result of %s has no %r%s (it has %s); trials run until their training ends "
                       "unless another criterion stops them", self.criteria, trial_id, key,
                       f" (did you mean {close[0]!r}?)" if close else "", ", ".join(sorted(result)))

    def __setstate__(self, state: dict[str, Any]) -> None:  # saved before this attribute existed
        self.__dict__.update({"_missing_told": set(), **state})


class FunctionStopper(Stopper):
    def __init__(self, function: Callable[[str, dict[str, Any]], bool]) -> None:
        self._function = function

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(self._function(trial_id, result))


class MaximumIterationStopper(Stopper):
    """Stop each trial after `max_iter` results."""

    def __init__(self, max_iter: int) -> None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"MaximumIterationStopper: max_iter must be an integer >= 1, got {max_iter!r}")
        self._max_iter = max_iter

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return result.get("training_iteration", 0) >= self._max_iter


class TimeoutStopper(Stopper):
    """End the whole experiment `timeout` seconds (or a timedelta) after the first check."""

    def __init__(self, timeout: Any) -> None:
        seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"TimeoutStopper: timeout must be a positive number of seconds, got {timeout!r}")
        self._timeout, self._start = float(seconds), None

    def stop_all(self) -> bool:
        if self._start is None:
            self._start = time.monotonic()
        return time.monotonic() - self._start >= self._timeout


class CombinedStopper(Stopper):
    """Stop when any of `stoppers` says so."""

    def __init__(self, *stoppers: Stopper) -> None:
        self._stoppers = stoppers

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return any([s(trial_id, result) for s in self._stoppers])  # every stopper sees every result

    def stop_all(self) -> bool:
        return any([s.stop_all() for s in self._stoppers])


class TrialPlateauStopper(Stopper):
    """Stop a trial once `metric` has plateaued: the standard deviation of its last `num_results`
    values is below `std`, after at least `grace_period` results (Ray's defaults). With
    `metric_threshold`, only once the value is also below it (mode="min") or above it ("max").

    Example:
        >>> tune.RunConfig(stop=TrialPlateauStopper(metric="loss", std=0.001, num_results=5))
    """

    def __init__(self, metric: str, std: float = 0.01, num_results: int = 4, grace_period: int = 4,
                 metric_threshold: float | None = None, mode: str | None = None) -> None:
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"TrialPlateauStopper: metric must be a result key, got {metric!r}")
        if isinstance(std, bool) or not isinstance(std, (int, float)) or std < 0:
            raise ValueError(f"TrialPlateauStopper: std must be a number >= 0, got {std=}")
        for name, value in (("num_results", num_results), ("grace_period", grace_period)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrialPlateauStopper: {name} must be an integer >= 1, got {name}={value!r}")
        if metric_threshold is not None and mode not in ("min", "max"):
            raise ValueError(f"TrialPlateauStopper: metric_threshold needs mode='min' or 'max', got {mode=}")
        self._metric, self._std, self._num_results, self._grace_period = metric, std, num_results, grace_period
        self._threshold, self._mode = metric_threshold, mode
        self._values: dict[str, collections.deque[float]] = {}
        self._counts: collections.Counter[str] = collections.Counter()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self._metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        self._counts[trial_id] += 1
        values = self._values.setdefault(trial_id, collections.deque(maxlen=self._num_results))
        values.append(float(value))
        if self._counts[trial_id] < self._grace_period or len(values) < self._num_results:
            return False
        if self._threshold is not None and (value > self._threshold if self._mode == "min"
                                            else value < self._threshold):
            return False
        return statistics.pstdev(values) < self._std


class ExperimentPlateauStopper(Stopper):
    """End the whole experiment once the `top` best values of `metric` reported so far have a
    standard deviation of at most `std`, for `patience` results more (Ray's defaults)."""

    def __init__(self, metric: str, std: float = 0.001, top: int = 10, mode: str = "min", patience: int = 0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ExperimentPlateauStopper: mode must be 'min' or 'max', got {mode=}")
        if isinstance(top, bool) or not isinstance(top, int) or top < 2:
            raise ValueError(f"ExperimentPlateauStopper: top must be an integer >= 2, got {top=}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"ExperimentPlateauStopper: patience must be an integer >= 0, got {patience=}")
        self._metric, self._std, self._top, self._mode, self._patience = metric, std, top, mode, patience
        self._best: list[float] = []
        self._plateau_results = -1  # results seen since the top values plateaued; -1: not plateaued

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self._metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        self._best = sorted([*self._best, float(value)], reverse=self._mode == "max")[:self._top]
        plateaued = len(self._best) == self._top and statistics.pstdev(self._best) <= self._std
        self._plateau_results = self._plateau_results + 1 if plateaued else -1
        return False

    def stop_all(self) -> bool:
        return self._plateau_results >= self._patience


def to_stopper(stop: Any) -> Stopper | None:
    """RunConfig(stop=...) as asynctune's stop argument, with Ray's meaning of a dict."""
    if stop is None or isinstance(stop, Stopper):
        return stop
    if isinstance(stop, Mapping):
        return DictStopper(stop)
    if callable(stop):
        return FunctionStopper(stop)
    raise ValueError(f"RunConfig: stop must be a dict, a function (trial_id, result) -> bool or a tune.Stopper, "
                     f"got {stop!r}")


class NoopStopper(Stopper):
    """Never stops anything."""


__getattr__ = module_getattr(__name__, {})
