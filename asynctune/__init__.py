"""asynctune: hyperparameter tuning on one asyncio event loop, without a cluster."""

from __future__ import annotations

from .errors import AsynctuneError, ExecutorError, HostUnreachable, SearchSpaceError, TrialFailed, WorkerLost
from .space import (
    Space, choice, grid_search, lograndint, loguniform, qloguniform, qrandint, qrandn, quniform, randint,
    randn, sample_from, uniform,
)
from .trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial
from .algorithms import (
    FINISHED, BasicVariantSearch, CoroutineScheduler, FIFOScheduler, GridSearch, RandomSearch, Scheduler,
    Searcher, TrialAdded, TrialEnded, TrialResult,
)
from .algorithms import ConcurrencyLimiter, SkOptSearch, TPESearch
from .resources import Placement, Resources

__version__ = "0.1.0"
