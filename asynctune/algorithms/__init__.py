"""Searchers (which configs to try) and schedulers (what to do with running trials).

base.py holds the two interfaces; search/ and schedulers/ one algorithm per module."""

from .base import (
    FINISHED, CoroutineScheduler, EventStream, Scheduler, Searcher, TrialAdded, TrialControl,
    TrialEnded, TrialResult,
)
from .schedulers import (
    ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule,
    MOASHAScheduler, PopulationBasedTraining,
)
from .search import (
    BasicVariantSearch, BOHBSearch, ConcurrencyLimiter, GridSearch, HyperOptSearch, OptunaSearch, RandomSearch,
    SkOptSearch, TPESearch,
)

__all__ = [
    "FINISHED", "CoroutineScheduler", "EventStream", "Scheduler", "Searcher", "TrialAdded", "TrialControl",
    "TrialEnded", "TrialResult",
    "ASHAScheduler", "AsyncHyperBandScheduler", "FIFOScheduler", "HyperBandScheduler", "MedianStoppingRule",
    "MOASHAScheduler", "PopulationBasedTraining",
    "BOHBSearch", "BasicVariantSearch", "ConcurrencyLimiter", "GridSearch", "HyperOptSearch", "OptunaSearch", "RandomSearch",
    "SkOptSearch", "TPESearch",
]
