"""Ray's `ray.tune.search.concurrency_limiter`."""

from . import ConcurrencyLimiter

__all__ = ["ConcurrencyLimiter"]
