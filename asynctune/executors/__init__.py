"""Executors run trials: on local worker processes, on SSH hosts, on a Dask cluster, or simulated."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Executor": "base", "TrialRun": "base", "LocalExecutor": "local",
    "SSHExecutor": "ssh", "Host": "ssh", "check_hosts": "ssh",
    "DaskExecutor": "dask",  # imports dask only when a DaskExecutor starts
    "SimulatedExecutor": "simulated", "Workload": "simulated",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m asynctune.worker` does not import the driver's side.
    if name not in _WHERE:
        raise AttributeError(f"module 'asynctune.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = list(_WHERE)
