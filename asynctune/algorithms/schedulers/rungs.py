"""What the early-stopping schedulers share: scores, sorted value lists and argument checks.

Scores are metric values turned "higher is better": `mode="min"` negates them, and NaN, inf or
a non-number becomes -inf, the worst score, so a diverged trial loses every comparison instead
of crashing one.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from typing import Any

from ...core.objectives import as_float

WORST = -math.inf


def score(value: Any, mode: str | None) -> float:
    """`value` as a score (higher is better); a non-finite value is the worst score."""
    number = as_float(value)
    if number is None:
        return WORST
    return number if mode == "max" else -number


class SortedValues:
    """Floats kept sorted, so a rank, the median or any quantile costs O(log n).

    Insertion and removal bisect for the place (O(log n) comparisons) and then shift the
    list's tail with one memmove, which is a few microseconds even at 100,000 values.
    """

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: list[float] = []

    def add(self, value: float) -> None:
        insort(self._values, value)

    def remove(self, value: float) -> None:
        index = bisect_left(self._values, value)
        if index == len(self._values) or self._values[index] != value:
            raise ValueError(f"{value!r} is not in the list")
        del self._values[index]

    def __len__(self) -> int:
        return len(self._values)

    def count_above(self, value: float) -> int:
        """How many values are strictly greater than `value`."""
        return len(self._values) - bisect_right(self._values, value)

    def quantile(self, q: float) -> float:
        """The q-quantile with linear interpolation (numpy's default method)."""
        if not self._values:
            raise ValueError("quantile of no values")
        return _interpolated(self._values, 0, q)

    def quantile_of_finite(self, q: float) -> float | None:
        """The q-quantile of the values other than the worst score (NaN, inf or not a number),
        as numpy's nanpercentile skips NaN; None when every value is the worst (or none)."""
        start = bisect_right(self._values, WORST)
        return _interpolated(self._values, start, q) if start < len(self._values) else None

    def median(self) -> float:
        return self.quantile(0.5)


def _interpolated(values: list[float], start: int, q: float) -> float:
    """The q-quantile of sorted values[start:] with linear interpolation."""
    position = start + q * (len(values) - 1 - start)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    below, above = values[low], values[high]
    fraction = position - low
    if fraction == 0 or below == above or below == WORST:
        return below  # also avoids -inf + inf = nan between a worst score and a finite one
    return below + fraction * (above - below)


# --- argument checks ----------------------------------------------------------------------------

def check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {name}={value!r}")


def check_non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {name}={value!r}")


def check_reduction_factor(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 1 or not math.isfinite(value):
        raise ValueError(f"reduction_factor must be a number > 1, got reduction_factor={value!r}")


def check_time_attr(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"time_attr must be the name of a result field, got time_attr={value!r}")


def require_metric_and_mode(owner: str, metric: str | None, mode: str | None) -> None:
    """What every scheduler's validate() checks: it cannot rank trials without both."""
    missing = [name for name, value in (("metric", metric), ("mode", mode)) if value is None]
    if missing:
        what = " and ".join(f"{name}=" for name in missing)
        raise ValueError(f"{owner} needs a metric and a mode, got {metric=}, {mode=}: pass {what} here or to run()")


def rung_milestones(grace_period: float, reduction_factor: float, max_t: float, bracket: int = 0) -> list[float]:
    """The resource levels r * eta^(k + s) below max_t at which bracket s compares its trials."""
    milestones = []
    level = grace_period * reduction_factor ** bracket
    while level < max_t:
        milestones.append(level)
        level *= reduction_factor
    return milestones
