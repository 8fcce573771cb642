"""Searchers (which configs to try) and schedulers (what to do with running trials)."""

from .base import (
    FINISHED, CoroutineScheduler, EventStream, Scheduler, Searcher, TrialAdded, TrialControl,
    TrialEnded, TrialResult,
)
from .basic import BasicVariantSearch, GridSearch, RandomSearch
from .fifo import FIFOScheduler
from .asha import ASHAScheduler, AsyncHyperBandScheduler
from .mo_asha import MOASHAScheduler
from .hyperband import HyperBandScheduler
from .median_stopping import MedianStoppingRule
from .pbt import PopulationBasedTraining
from .concurrency import ConcurrencyLimiter
from .skopt_search import SkOptSearch
from .tpe import TPESearch
from .bohb import BOHBSearch
from .optuna_search import OptunaSearch  # imports optuna only when used
from .hyperopt_search import HyperOptSearch  # imports hyperopt only when used

__all__ = [
    "FINISHED", "BasicVariantSearch", "CoroutineScheduler", "EventStream", "FIFOScheduler",
    "GridSearch", "RandomSearch", "Scheduler", "Searcher", "TrialAdded", "TrialControl",
    "TrialEnded", "TrialResult",
    "ASHAScheduler", "AsyncHyperBandScheduler", "HyperBandScheduler", "MedianStoppingRule", "MOASHAScheduler",
    "PopulationBasedTraining",
]
__all__ += ["BOHBSearch", "ConcurrencyLimiter", "OptunaSearch", "SkOptSearch", "TPESearch"]
__all__ += ["HyperOptSearch"]
