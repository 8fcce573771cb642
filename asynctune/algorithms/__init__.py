"""Searchers (which configs to try) and schedulers (what to do with running trials)."""

from .base import (
    FINISHED, CoroutineScheduler, EventStream, Scheduler, Searcher, TrialAdded, TrialControl,
    TrialEnded, TrialResult,
)
from .basic import BasicVariantSearch, GridSearch, RandomSearch
from .fifo import FIFOScheduler
from .concurrency import ConcurrencyLimiter
from .skopt_search import SkOptSearch
from .tpe import TPESearch

__all__ = [
    "FINISHED", "BasicVariantSearch", "CoroutineScheduler", "EventStream", "FIFOScheduler",
    "GridSearch", "RandomSearch", "Scheduler", "Searcher", "TrialAdded", "TrialControl",
    "TrialEnded", "TrialResult",
]
__all__ += ["ConcurrencyLimiter", "SkOptSearch", "TPESearch"]
