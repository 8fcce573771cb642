"""A space-filling start: a Latin hypercube over the numeric parameters, categories in turn.

n random points leave holes and clumps: with 8 draws in 2-D, the two closest are typically a
tenth of the width apart, and a model fitted to them sees one region twice and another not at
all. A Latin hypercube (McKay, Beckman and Conover, 1979) cuts each parameter's range into n
equal slices (in the domain's own scale: log for log domains) and puts exactly one point in each
slice; of several such designs the one whose closest pair is farthest apart is kept (maximin,
Morris and Mitchell, 1995). A `choice` takes each category the same number of times (up to one),
in random order, so every category is seen before the model starts.

Parameters inside a branch get their slices like the others; a point whose branch is not taken
simply ignores its value there. `randn` parameters, which have no range, are drawn from the
prior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...core.space import Categorical, Float, Integer, Parameter
from .model_based import Values, is_active
from .scale import Scale

# Candidate designs per start (the maximin choice among 20 costs well under a millisecond for
# the 5-20 points of a start); a start of more than _MAXIMIN_UP_TO points takes the first design,
# as comparing all pairs grows with the square.
_N_DESIGNS = 20
_MAXIMIN_UP_TO = 200


def latin_hypercube(params: Sequence[Parameter], n: int, rng: np.random.Generator) -> list[Values]:
    """n values dicts that together fill the space: one per startup trial, in order.

    Example:
        >>> latin_hypercube(Space({"x": uniform(0, 1), "k": choice(["a", "b"])}).parameters, 4, rng)
        [{('x',): 0.61, ('k',): 1}, {('x',): 0.08, ('k',): 0}, ...]
    """
    if n <= 0:
        return []
    numeric = [p for p in params if isinstance(p.domain, (Float, Integer))]
    cube = _maximin_design(n, len(numeric), rng)  # (n, len(numeric)) in [0, 1)
    columns: dict[tuple, np.ndarray] = {
        p.path: _from_unit(p.domain, cube[:, j]) for j, p in enumerate(numeric)}
    for p in params:
        if isinstance(p.domain, Categorical):
            k = len(p.domain.categories)
            columns[p.path] = rng.permutation(np.resize(rng.permutation(k), n))
    points: list[Values] = []
    for i in range(n):
        values: Values = {}
        for p in params:  # parents first: a branch's parameters follow its choice
            if p.path in columns and is_active(p, values):
                values[p.path] = columns[p.path][i].item()
        points.append(values)
    return points


def _maximin_design(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Of _N_DESIGNS Latin hypercubes, the one whose closest two points are farthest apart."""
    if d == 0:
        return np.empty((n, 0))
    best, best_distance = None, -1.0
    for _ in range(_N_DESIGNS if n <= _MAXIMIN_UP_TO else 1):
        slices = np.argsort(rng.random((d, n)), axis=1).T  # (n, d): a permutation per column
        design = (slices + rng.random((n, d))) / n
        if n < 2 or n > _MAXIMIN_UP_TO:
            return design
        gaps = design[:, None, :] - design[None, :, :]
        distances = (gaps ** 2).sum(axis=2)
        closest = distances[np.triu_indices(n, 1)].min()
        if closest > best_distance:
            best, best_distance = design, closest
    assert best is not None
    return best


def _from_unit(domain: Float | Integer, u: np.ndarray) -> np.ndarray:
    """Map [0, 1) onto the domain, uniformly in its scale (log for log domains), through the same
    bounds and rounding bins as TPE's kernels (`Scale`: an integer owns [v - q/2, v + q/2]), so
    every value is as likely as the prior makes it."""
    scale = Scale(domain)
    return scale.to_values(scale.low + u * (scale.high - scale.low))
