"""asynctune: hyperparameter tuning on one asyncio event loop, without a cluster.

    import asynctune

    def train(config):
        for step in range(10):
            asynctune.report(loss=(config["x"] - 3) ** 2 / (step + 1))

    analysis = asynctune.run(train, config={"x": asynctune.uniform(0, 10)}, num_samples=20,
                             metric="loss", mode="min")
    print(analysis.best_config)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AsynctuneError, ExecutorError, HostUnreachable, SearchSpaceError, TrialFailed, WorkerLost
from .space import (
    Space, choice, grid_search, lograndint, loguniform, qloguniform, qrandint, qrandn, quniform, randint,
    randn, sample_from, uniform,
)
from .trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial
from .session import get_checkpoint, get_trial_dir, get_trial_id, get_trial_resources, report
from .trainable import Trainable
from .algorithms import (
    FINISHED, BasicVariantSearch, CoroutineScheduler, FIFOScheduler, GridSearch, RandomSearch, Scheduler,
    Searcher, TrialAdded, TrialEnded, TrialResult,
)
from .algorithms import ConcurrencyLimiter, SkOptSearch, TPESearch
from .resources import Placement, Resources
from .stopper import Stopper
from .reporting import Callback, ConsoleReporter
from .executors import Executor, LocalExecutor, TrialRun
from .analysis import ExperimentAnalysis
from .api import run, run_async

__all__ = [
    "AsynctuneError", "BasicVariantSearch", "CONTINUE", "Callback", "ConsoleReporter", "CoroutineScheduler",
    "Decision", "Executor", "ExecutorError", "ExperimentAnalysis", "FIFOScheduler", "FINISHED", "GridSearch",
    "HostUnreachable", "LocalExecutor", "Mutate", "PAUSE", "Placement", "RandomSearch", "Resources", "STOP",
    "Scheduler", "SearchSpaceError", "Searcher", "Space", "Status", "Stopper", "Trainable", "Trial",
    "TrialAdded", "TrialEnded", "TrialFailed", "TrialResult", "TrialRun", "WorkerLost", "choice",
    "get_checkpoint", "get_trial_dir", "get_trial_id", "get_trial_resources", "grid_search", "lograndint",
    "loguniform", "qloguniform", "qrandint", "qrandn", "quniform", "randint", "randn", "report", "run",
    "run_async", "sample_from", "uniform",
]
__all__ += ["ConcurrencyLimiter", "SkOptSearch", "TPESearch"]
