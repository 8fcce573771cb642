"""Modules that moved when the package took its current layout, still importable by their old
names: pickles written before (run_spec.pkl, searcher state, checkpoints) name the classes they
hold by module, and users' scripts may import `asynctune.space`. An old name is an alias of the
new module (the same object), with a DeprecationWarning for code that imports it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# old name -> new name, both under "asynctune."
MOVED = {
    "trial": "core.trial", "space": "core.space", "pareto": "core.pareto", "resources": "core.resources",
    "gpu": "core.gpu", "stopper": "core.stopper", "_compat": "core.compat", "_logging": "core.logs",
    "trial_driver": "controller.driver", "attempt": "controller.runtime", "outcomes": "controller.outcomes",
    "actions": "controller.actions", "decide": "controller.decision", "ending": "controller.ending",
    "searching": "controller.searcher_driver", "metric_check": "controller.metric_check",
    "trial_monitor": "controller.trial_monitoring", "monitor": "controller.resource_monitor",
    "replay": "controller.replay",
    "storage": "store.layout", "safe_files": "store.private_files", "recording": "store.recording",
    "recovery": "store.recovery", "state": "store.state",
    "session": "worker.session", "trainable": "worker.trainable", "pickling": "worker.pickling",
    "executors.worker": "worker.main", "executors.protocol": "worker.protocol",
    "executors.ssh_host": "executors.ssh.host", "executors.ssh_sync": "executors.ssh.sync",
    "executors.ssh_workers": "executors.ssh.workers", "executors.hosts": "executors.ssh.hosts",
    "executors.dask_channel": "executors.dask.channel", "executors.dask_cluster": "executors.dask.cluster",
    "executors.dask_worker": "executors.dask.worker",
    **{f"algorithms.{name}": f"algorithms.search.{name}"
       for name in ("basic", "tpe", "bohb", "skopt_search", "optuna_search", "concurrency", "model_based")},
    **{f"algorithms.{name}": f"algorithms.schedulers.{name}"
       for name in ("fifo", "median_stopping", "hyperband", "asha", "mo_asha", "pbt")},
    "algorithms._rungs": "algorithms.schedulers.rungs",
    "plot": "analysis.plot",
}
_PREFIX = "asynctune."


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the new module is loaded already


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds `asynctune.<old name>` as the module it became."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        new = MOVED.get(fullname[len(_PREFIX):])
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {_PREFIX}{new}; the old name will go in a later version "
                      f"(public names are importable from asynctune itself)", DeprecationWarning, stacklevel=3)
        return importlib.machinery.ModuleSpec(fullname, _Alias(_PREFIX + new))


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
