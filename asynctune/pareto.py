"""Pareto dominance for several objectives: the front, non-dominated sorting and a spread-out
order within a front (an epsilon-net). Pure functions over rows of numbers; nothing does I/O.

Points are "lower is better" in every column: callers flip a column whose mode is "max"
(`as_costs`). A point dominates another if it is no worse in every column and better in one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .trial import _as_float


def as_costs(result: dict[str, Any] | None, metrics: Sequence[str], modes: Sequence[str]) -> tuple[float, ...] | None:
    """The result's objectives as costs (mode "max" negated); None if one is missing or not finite."""
    if not result:
        return None
    costs = []
    for metric, mode in zip(metrics, modes):
        value = _as_float(result.get(metric))
        if value is None:
            return None
        costs.append(-value if mode == "max" else value)
    return tuple(costs)


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
    removed, and so on (Deb et al. 2002's ranks, without crowding)."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        mask = non_dominated([points[i] for i in remaining])
        fronts.append([i for i, m in zip(remaining, mask) if m])
        remaining = [i for i, m in zip(remaining, mask) if not m]
    return fronts


def epsilon_net_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices in an order that spreads out: start from the point best in the first objective,
    then repeatedly take the point farthest from those taken (Clarkson's epsilon-net, as in
    Schmucker et al. 2021 and Salinas et al. 2021). Distances use each objective scaled to
    [0, 1] over `points`, so objectives of different units weigh the same. Ties: lower index."""
    if not len(points):
        return []
    costs = np.asarray(points, dtype=float)
    span = costs.max(axis=0) - costs.min(axis=0)
    scaled = (costs - costs.min(axis=0)) / np.where(span > 0, span, 1.0)
    first = int(np.lexsort(scaled.T[::-1])[0])  # best first objective, then the next ones
    order = [first]
    distance = np.linalg.norm(scaled - scaled[first], axis=1)
    distance[first] = -math.inf
    for _ in range(len(costs) - 1):
        farthest = int(np.argmax(distance))
        order.append(farthest)
        distance = np.minimum(distance, np.linalg.norm(scaled - scaled[farthest], axis=1))
        distance[order] = -math.inf
    return order


def nondominated_rank(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices best first: by front, and within a front in epsilon-net order (the tie-break)."""
    ranked = []
    for front in nondominated_fronts(points):
        ranked += [front[i] for i in epsilon_net_order([points[j] for j in front])]
    return ranked
