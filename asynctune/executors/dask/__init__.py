"""Trials on a Dask `distributed` cluster (Slurm, Kubernetes, a LocalCluster): see docs/dask.md."""

from .executor import DaskExecutor

__all__ = ["DaskExecutor"]
