"""The internal scale that TPE's kernels and the space-filling start share (scale.Scale)."""

from __future__ import annotations

import numpy as np

from asynctune.algorithms.search.space_filling import _from_unit
from asynctune.core.space import Integer


def lowest_value_share(domain: Integer) -> float:
    """The share of [0, 1) that the start's mapping sends to the domain's lowest value."""
    values = _from_unit(domain, (np.arange(100_000) + 0.5) / 100_000)
    return float(np.mean(values == domain.low))


def test_the_lowest_log_integer_keeps_a_bounded_share_whatever_q() -> None:
    # The lowest value owns [low - q/2, low + q/2], cut at low / 2 on a log scale: without the
    # cut, a q just under 2 * low stretched its bin towards 0 (0.48 of the range at q = 19).
    shares = [lowest_value_share(Integer(10, 1000, log=True, q=q)) for q in (1, 9, 15, 19, 20)]
    assert max(shares) < 0.3, shares
    assert shares == sorted(shares), shares  # a wider bin never gets less
