"""Ray Tune's `ray.tune` on asynctune: `from asynctune.compat.ray import tune`.

See docs/migrating_from_ray.md for what maps to what and what differs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._unsupported import module_getattr

# The trial side is imported eagerly and stays light (a worker unpickling a trainable that calls
# tune.report imports this package); the driver side loads on first use.
from ._session import Checkpoint, TuneContext, get_checkpoint, get_context, report
from ._space import (
    choice, grid_search, lograndint, loguniform, qlograndint, qloguniform, qrandint, qrandn, quniform, randint,
    randn, sample_from, uniform,
)
from ._placement import PlacementGroupFactory
from ._trainables import Trainable, in_a_trial, with_parameters, with_resources

_LAZY = {
    "CheckpointConfig": "._configs", "FailureConfig": "._configs", "RunConfig": "._configs",
    "SyncConfig": "._configs", "TuneConfig": "._configs", "run": "._legacy_run", "Result": "._results",
    "ResultGrid": "._results", "Tuner": "._tuner", "Callback": ".callback", "LoggerCallback": ".logger",
    "Stopper": "asynctune", "ExperimentAnalysis": ".analysis", "TuneError": "asynctune.errors",
    "CLIReporter": ".progress_reporter", "JupyterNotebookReporter": ".progress_reporter",
    "ProgressReporter": ".progress_reporter",
}
_RENAMED = {"TuneError": "AsynctuneError"}

if TYPE_CHECKING:
    from asynctune import Stopper
    from asynctune.errors import AsynctuneError as TuneError

    from .analysis import ExperimentAnalysis
    from .progress_reporter import CLIReporter, JupyterNotebookReporter, ProgressReporter
    from ._configs import CheckpointConfig, FailureConfig, RunConfig, SyncConfig, TuneConfig
    from ._legacy_run import run
    from ._results import Result, ResultGrid
    from ._tuner import Tuner
    from .callback import Callback
    from .logger import LoggerCallback

_SUBMODULES = ("schedulers", "search", "stopper", "logger", "callback", "result", "utils", "execution",
               "experiment", "integration", "analysis", "progress_reporter", "trainable")
_HINTS = {
    "register_trainable": "pass the function or class itself to Tuner",
    "register_env": "asynctune has no environment registry: build the environment inside the trainable",
    "Experiment": "use Tuner(...) or tune.run(...)",
    "run_experiments": "use Tuner(...).fit()",
    "ResumeConfig": "use Tuner.restore(path)",
    "with_restore": "use Tuner.restore(path)",
    "SearchAlgorithm": "write an asynctune Searcher (tune.search.Searcher)",
    "checkpoint_dir": "Ray 1.x's checkpoint_dir is gone: write the files into a tempfile.TemporaryDirectory() d and "
                      "call tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))",
}
# Ray 1.x's session functions, still in many scripts: tune.get_trial_id() is tune.get_context().get_trial_id()
_CONTEXT_FUNCTIONS = ("get_trial_id", "get_trial_name", "get_trial_dir", "get_trial_resources")
_missing = module_getattr(__name__, _HINTS)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__ if _LAZY[name].startswith(".") else None)
        value = globals()[name] = getattr(module, _RENAMED.get(name, name))
        return value
    if name in _SUBMODULES:  # `tune.schedulers.ASHAScheduler` without importing the submodule first
        return importlib.import_module(f".{name}", __name__)
    if name in _CONTEXT_FUNCTIONS:
        return getattr(TuneContext(), name)
    if name == "is_session_enabled":
        return in_a_trial
    return _missing(name)


__all__ = [
    "CLIReporter", "Callback", "Checkpoint", "CheckpointConfig", "ExperimentAnalysis", "FailureConfig",
    "JupyterNotebookReporter", "LoggerCallback", "PlacementGroupFactory", "ProgressReporter", "Result", "ResultGrid",
    "RunConfig", "Stopper", "SyncConfig", "Trainable", "TuneConfig", "TuneContext", "TuneError", "Tuner", "choice",
    "get_checkpoint", "get_context", "grid_search", "lograndint", "loguniform", "qlograndint", "qloguniform",
    "qrandint", "qrandn", "quniform", "randint", "randn", "report", "run", "sample_from", "uniform",
    "with_parameters", "with_resources",
]
