"""Where a numeric domain's values live for a model: log or linear, bounds, rounding bins, prior.

TPE's kernels and the space-filling start both map between a domain's values and this internal
scale, so that a design's slices and the kernels' bins are the same.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.space import Float, Integer, Normal


class Scale:
    """A numeric domain's internal scale (log or linear), its bounds, rounding bins and prior."""

    def __init__(self, domain: Float | Integer | Normal) -> None:
        self.domain = domain
        self.log = bool(getattr(domain, "log", False))
        if isinstance(domain, Normal):
            self.q = domain.q
            self.low, self.high = -math.inf, math.inf
            self.prior_mu, self.prior_sigma = domain.mean, domain.sd
            self.edges = (domain.mean - 2 * domain.sd, domain.mean + 2 * domain.sd)
            self.width = domain.sd  # an unbounded domain: wider kernels would let the search drift away
        else:
            if isinstance(domain, Integer):
                self.q = float(domain.q)
                # Integers own the bin [v - q/2, v + q/2], so the ends are as likely as the middle.
                # On a log scale the lowest bin is cut at low / 2: reaching down towards 0 it would
                # take a share of the prior that grows without bound as q nears 2 * low.
                low = domain.low - self.q / 2
                self.value_low = max(low, domain.low / 2) if self.log else low
                self.value_high = domain.high + self.q / 2
            else:
                self.q = domain.q
                self.value_low, self.value_high = domain.low, domain.high
            self.low, self.high = self.to_internal(np.array([self.value_low, self.value_high]))
            self.prior_mu, self.prior_sigma = (self.low + self.high) / 2, self.high - self.low
            self.edges = (self.low, self.high)
            self.width = self.high - self.low

    def to_internal(self, values: np.ndarray) -> np.ndarray:
        return np.log(values) if self.log else values

    def bins(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The internal interval each (rounded) value stands for; None for continuous values."""
        if self.q is None:
            return None
        low, high = values - self.q / 2, values + self.q / 2
        if not isinstance(self.domain, Normal):
            low, high = np.maximum(low, self.value_low), np.minimum(high, self.value_high)
        return self.to_internal(low), self.to_internal(high)

    def to_values(self, internal: np.ndarray) -> np.ndarray:
        values = np.exp(internal) if self.log else internal
        domain = self.domain
        if isinstance(domain, Normal):
            return values if domain.q is None else np.round(values / domain.q) * domain.q
        values = np.clip(values, domain.low, domain.high)
        if isinstance(domain, Integer):
            return np.array([domain.quantize(v) for v in values], dtype=np.int64)
        return values if domain.q is None else np.array([domain.quantize(v) for v in values])
