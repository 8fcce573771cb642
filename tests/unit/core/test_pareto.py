"""Non-dominated sorting (core/pareto.py) against the definition: fronts, ranks, the top k."""

from __future__ import annotations

import math
import random

import pytest

from asynctune.core.pareto import in_top, non_dominated, nondominated_fronts, nondominated_rank


def _dominates(a, b):
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _fronts_by_definition(points):
    remaining, fronts = list(range(len(points))), []
    while remaining:
        front = [i for i in remaining if not any(_dominates(points[j], points[i]) for j in remaining)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


@pytest.mark.parametrize("objectives", [2, 3, 4])
def test_nondominated_sorting_agrees_with_the_definition(objectives):
    """Ties, equal points and infinite costs included; the 2-D fast path and the matrix path."""
    rng = random.Random(objectives)
    for _ in range(200):
        points = [tuple(rng.choice([0.0, 1.0, 2.0, rng.random(), math.inf]) for _ in range(objectives))
                  for _ in range(rng.randint(0, 25))]
        fronts = _fronts_by_definition(points)
        assert nondominated_fronts(points) == fronts
        assert non_dominated(points) == [i in (fronts or [[]])[0] for i in range(len(points))]
        ranked = nondominated_rank(points)
        assert [sorted(ranked[sum(map(len, fronts[:k])):][:len(f)]) for k, f in enumerate(fronts)] == fronts
        for top in range(len(points) + 1):
            assert nondominated_rank(points, top) == ranked[:top]
            assert [in_top(points, i, top) for i in range(len(points))] == [i in ranked[:top] for i in range(len(points))]
