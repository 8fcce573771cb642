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

import importlib
from typing import TYPE_CHECKING, Any

# Logging is the application's to configure; until it does, asynctune's warnings (safety, lost
# work) still reach stderr, through a handler that steps aside once any other one is set up.
from ._logging import install as _install_logging

_install_logging()

# The trial side (what a worker needs) is imported eagerly and stays light; everything else
# loads on first use, so a worker process starts in tens of milliseconds, not hundreds.
from .errors import (
    AsynctuneError, ExecutorError, ExecutorLost, ExperimentDamaged, HostUnreachable, SearchSpaceError, StorageFull,
    TrialFailed, TrialsFailed, UnsafeFileError, WorkerLost,
)
from .session import get_checkpoint, get_trial_dir, get_trial_id, get_trial_resources, report
from .trainable import Trainable
from .trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial

_LAZY = {
    "space": ["Space", "choice", "grid_search", "lograndint", "loguniform", "qloguniform", "qrandint", "qrandn",
              "quniform", "randint", "randn", "sample_from", "uniform"],
    "algorithms": ["FINISHED", "BasicVariantSearch", "CoroutineScheduler", "FIFOScheduler", "GridSearch",
                   "RandomSearch", "Scheduler", "Searcher", "TrialAdded", "TrialEnded", "TrialResult"],
    "resources": ["Placement", "Resources"],
    "stopper": ["Stopper"],
    "reporting": ["Callback", "ConsoleReporter", "DecisionLog", "TensorBoardLogger"],
    "executors": ["Executor", "LocalExecutor", "TrialRun"],
    "analysis": ["ExperimentAnalysis"],
    "api": ["run", "run_async", "resume"],
}
_LAZY["algorithms"] += ["ASHAScheduler", "AsyncHyperBandScheduler", "HyperBandScheduler", "MedianStoppingRule",
                        "MOASHAScheduler", "PopulationBasedTraining"]
_LAZY["algorithms"] += ["BOHBSearch", "ConcurrencyLimiter", "SkOptSearch", "TPESearch"]
_LAZY["algorithms"] += ["OptunaSearch"]
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
_WHERE["SSHExecutor"] = "executors"
_WHERE["DaskExecutor"] = "executors"
_WHERE.update(ExperimentLocked="store.lock", ExperimentFileError="store.format", DirectoryVanished="store.vanished")


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'asynctune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:
    from .algorithms import (
        FINISHED, BasicVariantSearch, CoroutineScheduler, FIFOScheduler, GridSearch, RandomSearch, Scheduler,
        Searcher, TrialAdded, TrialEnded, TrialResult,
    )
    from .algorithms import (
        ASHAScheduler, AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule, MOASHAScheduler,
        PopulationBasedTraining,
    )
    from .algorithms import BOHBSearch, ConcurrencyLimiter, OptunaSearch, SkOptSearch, TPESearch
    from .analysis import ExperimentAnalysis
    from .api import resume, run, run_async
    from .executors import Executor, LocalExecutor, TrialRun
    from .reporting import Callback, ConsoleReporter, DecisionLog, TensorBoardLogger
    from .resources import Placement, Resources
    from .space import (
        Space, choice, grid_search, lograndint, loguniform, qloguniform, qrandint, qrandn, quniform, randint,
        randn, sample_from, uniform,
    )
    from .stopper import Stopper

__all__ = [
    "AsynctuneError", "CONTINUE", "Decision", "ExecutorError", "ExecutorLost", "ExperimentDamaged", "HostUnreachable",
    "Mutate", "PAUSE", "STOP", "SearchSpaceError", "Status", "StorageFull", "Trainable", "Trial", "TrialFailed",
    "TrialsFailed", "UnsafeFileError", "WorkerLost", "get_checkpoint",
    "get_trial_dir", "get_trial_id", "get_trial_resources", "report", *_WHERE,
]
