"""Ray's stoppers, `ray.tune.stopper`: `Stopper` is asynctune's (the same two methods)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from asynctune import Stopper

from .._unsupported import module_getattr


class DictStopper(Stopper):
    """Ray's stop dict: a trial stops once any key reaches its value, result[key] >= value (a
    flag such as {"done": True} stops when the result's flag is true)."""

    def __init__(self, criteria: Mapping[str, Any]) -> None:
        for key, value in criteria.items():
            if not isinstance(value, (bool, int, float)):
                raise ValueError(f"stop: the value for {key!r} must be a number or a bool, got {value!r}")
        self.criteria = dict(criteria)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        for key, threshold in self.criteria.items():
            value = result.get(key)
            if value is None:
                continue
            if isinstance(threshold, bool):
                if bool(value) == threshold:
                    return True
            elif isinstance(value, (int, float)) and value >= threshold:
                return True
        return False


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
        return any(s(trial_id, result) for s in self._stoppers)

    def stop_all(self) -> bool:
        return any(s.stop_all() for s in self._stoppers)


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


_PLATEAU = "subclass tune.Stopper with your own plateau rule, or use asynctune's schedulers (MedianStoppingRule)"
__getattr__ = module_getattr(__name__, {"TrialPlateauStopper": _PLATEAU, "ExperimentPlateauStopper": _PLATEAU,
                                        "NoopStopper": "pass stop=None"})
