"""Executors run trials: on local worker processes, on SSH hosts, or on a Dask cluster."""

from .base import Executor, TrialRun
from .local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "TrialRun"]
