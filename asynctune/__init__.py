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
from .core.logs import install as _install_logging

_install_logging()

# Old module names (before the package layout) stay importable: pickles written then name them.
from .core.moved import install as _install_moved  # noqa: E402

_install_moved()

# The trial side (what a worker needs) is imported eagerly and stays light; everything else
# loads on first use, so a worker process starts in tens of milliseconds, not hundreds.
from .errors import (
    AsynctuneError, ExecutorError, ExecutorLost, ExperimentDamaged, HostUnreachable, NothingReported, RunSpecNotWritten,
    SearchSpaceError, StateNotWritten, StorageFull, TrialFailed, TrialsFailed, UnsafeFileError, UntrustedFileError,
    WorkerLost,
)
from .worker.session import get_checkpoint, get_trial_dir, get_trial_id, get_trial_resources, report
from .worker.trainable import Trainable
from .core.trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial

# Everything else, by the module that defines it: one table, loaded on first use.
_LAZY: dict[str, str] = {
    **dict.fromkeys(["Space", "choice", "grid_search", "lograndint", "loguniform", "qlograndint", "qloguniform",
                     "qrandint", "qrandn", "quniform", "randint", "randn", "sample_from", "uniform"], "core.space"),
    **dict.fromkeys(["Placement", "Resources"], "core.resources"),
    "Stopper": "core.stopper",
    **dict.fromkeys(["FINISHED", "CoroutineScheduler", "Scheduler", "Searcher", "TrialAdded", "TrialEnded",
                     "TrialResult"], "algorithms.base"),
    **dict.fromkeys(["ASHAScheduler", "AsyncHyperBandScheduler", "FIFOScheduler", "HyperBandScheduler",
                     "MedianStoppingRule", "MOASHAScheduler", "PopulationBasedTraining"], "algorithms.schedulers"),
    **dict.fromkeys(["BasicVariantSearch", "BOHBSearch", "ConcurrencyLimiter", "GridSearch", "HyperOptSearch",
                     "OptunaSearch", "RandomSearch", "SkOptSearch", "TPESearch"], "algorithms.search"),
    **dict.fromkeys(["Callback", "ConsoleReporter", "DecisionLog", "TensorBoardLogger"], "reporting"),
    **dict.fromkeys(["Executor", "TrialRun", "LocalExecutor", "SSHExecutor", "Host", "DaskExecutor",
                     "SimulatedExecutor", "Workload"], "executors"),
    "ExperimentAnalysis": "analysis",
    "trust_directory": "store.signing",
    "ExperimentLocked": "store.lock", "ExperimentFileError": "store.format", "DirectoryVanished": "store.vanished",
    **dict.fromkeys(["run", "run_async", "resume"], "api"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        from .compat.ray_hints import missing_name  # Ray Tune's names say where their counterparts are
        raise missing_name(name)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .algorithms.base import (
        FINISHED, CoroutineScheduler, Scheduler, Searcher, TrialAdded, TrialEnded, TrialResult,
    )
    from .algorithms.schedulers import (
        ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule,
        MOASHAScheduler, PopulationBasedTraining,
    )
    from .algorithms.search import (
        BasicVariantSearch, BOHBSearch, ConcurrencyLimiter, GridSearch, HyperOptSearch, OptunaSearch, RandomSearch,
        SkOptSearch, TPESearch,
    )
    from .analysis import ExperimentAnalysis
    from .api import resume, run, run_async
    from .core.resources import Placement, Resources
    from .core.space import (
        Space, choice, grid_search, lograndint, loguniform, qlograndint, qloguniform, qrandint, qrandn, quniform,
        randint, randn, sample_from, uniform,
    )
    from .core.stopper import Stopper
    from .store.format import ExperimentFileError
    from .store.lock import ExperimentLocked
    from .store.signing import trust_directory
    from .store.vanished import DirectoryVanished
    from .executors import (
        DaskExecutor, Executor, Host, LocalExecutor, SimulatedExecutor, SSHExecutor, TrialRun, Workload,
    )
    from .reporting import Callback, ConsoleReporter, DecisionLog, TensorBoardLogger

__all__ = [
    "AsynctuneError", "CONTINUE", "Decision", "ExecutorError", "ExecutorLost", "ExperimentDamaged", "HostUnreachable",
    "Mutate", "NothingReported", "PAUSE", "RunSpecNotWritten", "STOP", "SearchSpaceError", "StateNotWritten", "Status",
    "StorageFull", "Trainable", "Trial",
    "TrialFailed", "TrialsFailed", "UnsafeFileError", "UntrustedFileError", "WorkerLost", "get_checkpoint",
    "get_trial_dir", "get_trial_id", "get_trial_resources", "report", *_LAZY,
]
