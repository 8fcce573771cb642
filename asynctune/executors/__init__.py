"""Executors run trials: on local worker processes, on SSH hosts, or on a Dask cluster."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Executor": "base", "TrialRun": "base", "LocalExecutor": "local"}
_WHERE.update(SSHExecutor="ssh", Host="hosts", check_hosts="ssh")
_WHERE["DaskExecutor"] = "dask"  # imports dask only when a DaskExecutor starts


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m asynctune.worker` does not import the driver's side.
    if name not in _WHERE:
        raise AttributeError(f"module 'asynctune.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = list(_WHERE)
