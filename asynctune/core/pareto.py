"""Pareto dominance for several objectives: the front, non-dominated sorting and a spread-out
order within a front (an epsilon-net). Pure functions over rows of numbers; nothing does I/O.

Points are "lower is better" in every column: callers flip a column whose mode is "max"
(`as_costs`). A point dominates another if it is no worse in every column and better in one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import numpy as np

from .objectives import as_float
from .trial import Status, Trial


def as_costs(result: dict[str, Any] | None, metrics: Sequence[str], modes: Sequence[str]) -> tuple[float, ...] | None:
    """The result's objectives as costs (mode "max" negated); None if one is missing or not finite."""
    if not result:
        return None
    costs = []
    for metric, mode in zip(metrics, modes):
        value = as_float(result.get(metric))
        if value is None:
            return None
        costs.append(-value if mode == "max" else value)
    return tuple(costs)


def front_of(trials: Sequence[Trial], metrics: Sequence[str], modes: Sequence[str], *,
             include_failed: bool = False) -> list[Trial]:
    """The non-dominated trials by their last results, in the order given; trials missing a metric
    (or holding NaN/inf) are left out, and failed ones unless `include_failed`."""
    scored = []
    for trial in trials:
        if trial.status is Status.ERROR and not include_failed:
            continue
        point = as_costs(trial.last_result, metrics, modes)
        if point is not None:
            scored.append((trial, point))
    mask = non_dominated([point for _, point in scored])
    return [trial for (trial, _), keep in zip(scored, mask) if keep]


def non_dominated(points: Sequence[Sequence[float]]) -> list[bool]:
    """For each point, whether no other point dominates it (equal points do not dominate each other)."""
    if not len(points):
        return []
    costs = np.asarray(points, dtype=float)
    keep = np.ones(len(costs), dtype=bool)
    for i, point in enumerate(costs):
        if keep[i]:  # a dominated point dominates nothing its dominator does not: skip it
            keep &= ~(np.all(point <= costs, axis=1) & np.any(point < costs, axis=1))
    return keep.tolist()


def nondominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Non-dominated sorting: the indices of the first front, then of the front once it is
    removed, and so on (Deb et al. 2002's ranks, without crowding). Each front in index order."""
    if not len(points):
        return []
    if len(points[0]) == 2:
        return _fronts_2d(points)
    # More objectives: who dominates whom as one n x n matrix, then peel the fronts off it.
    costs = np.asarray(points, dtype=float)
    dominates = np.ones((len(costs), len(costs)), dtype=bool)
    strictly = np.zeros_like(dominates)
    for column in costs.T:  # one objective at a time keeps memory at a few n x n booleans
        dominates &= column[:, None] <= column[None, :]
        strictly |= column[:, None] < column[None, :]
    dominates &= strictly
    dominated_by = dominates.sum(axis=0)
    fronts = []
    remaining = np.ones(len(costs), dtype=bool)
    while remaining.any():
        front = np.flatnonzero(remaining & (dominated_by == 0))
        fronts.append(front.tolist())
        remaining[front] = False
        dominated_by = dominated_by - dominates[front].sum(axis=0)
        dominated_by[~remaining] = -1
    return fronts


def _fronts_2d(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Two objectives in O(n log n): in order of the first cost, a point joins the first front
    whose lowest point (by second cost, then first) does not dominate it. Every front's lowest
    point is at or above the previous front's, so the first such front is found by bisection."""
    lowest: list[tuple[float, float]] = []  # per front: (second cost, first cost) of its lowest point
    fronts: list[list[int]] = []
    for index in sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1])):
        key = (points[index][1], points[index][0])
        k = bisect_left(lowest, key)  # fronts before k hold a point better in both (or in one, equal in the other)
        if k == len(fronts):
            lowest.append(key)
            fronts.append([index])
        else:
            lowest[k] = key
            fronts[k].append(index)
    return [sorted(front) for front in fronts]


def epsilon_net_order(points: Sequence[Sequence[float]], limit: int | None = None) -> list[int]:
    """Indices in an order that spreads out: start from the point best in the first objective,
    then repeatedly take the point farthest from those taken (Clarkson's epsilon-net, as in
    Schmucker et al. 2021 and Salinas et al. 2021). Distances use each objective scaled to
    [0, 1] over `points`, so objectives of different units weigh the same. Ties: lower index.
    With `limit`, only the first `limit` indices."""
    if not len(points):
        return []
    costs = np.asarray(points, dtype=float)
    finite = np.where(np.isfinite(costs), costs, np.nan)
    low = np.nan_to_num(np.nanmin(finite, axis=0, initial=math.inf, where=~np.isnan(finite)), posinf=0.0)
    high = np.nan_to_num(np.nanmax(finite, axis=0, initial=-math.inf, where=~np.isnan(finite)), neginf=0.0)
    span = np.where(high > low, high - low, 1.0)
    # a diverged (infinite) cost sits just beyond the finite ones, so distances stay finite
    scaled = np.clip((costs - low) / span, -1.0, 2.0)
    first = int(np.lexsort(scaled.T[::-1])[0])  # best first objective, then the next ones
    order = [first]
    distance = np.linalg.norm(scaled - scaled[first], axis=1)
    distance[first] = -math.inf
    for _ in range(min(len(costs), len(costs) if limit is None else limit) - 1):
        farthest = int(np.argmax(distance))
        order.append(farthest)
        distance = np.minimum(distance, np.linalg.norm(scaled - scaled[farthest], axis=1))
        distance[order] = -math.inf
    return order


def nondominated_rank(points: Sequence[Sequence[float]], limit: int | None = None) -> list[int]:
    """Indices best first: by front, and within a front in epsilon-net order (the tie-break).
    With `limit`, only the best `limit` of them (fronts beyond it are not ordered)."""
    ranked: list[int] = []
    for front in nondominated_fronts(points):
        if limit is not None and len(ranked) >= limit:
            break
        wanted = None if limit is None else limit - len(ranked)
        ranked += [front[i] for i in epsilon_net_order([points[j] for j in front], wanted)]
    return ranked


def in_top(points: Sequence[Sequence[float]], index: int, top: int) -> bool:
    """Whether points[index] is among the best `top` by `nondominated_rank`, ordering only the
    front that the cut runs through, and only if `index` is in it."""
    if top <= 0:
        return False
    before = 0
    for front in nondominated_fronts(points):
        if index in front:
            if before + len(front) <= top:
                return True
            order = epsilon_net_order([points[j] for j in front], top - before)
            return front.index(index) in order
        before += len(front)
        if before >= top:
            return False
    raise IndexError(f"no point {index} among {len(points)}")
