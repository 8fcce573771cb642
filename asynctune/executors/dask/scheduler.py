"""Where a DaskExecutor's scheduler is, and the credentials to reach it with.

The executor is given a scheduler address, a `distributed.Client` or a `Cluster`, or nothing:
then it starts a private LocalCluster (cluster.py). The checks of those arguments run in the
executor's `__init__`, before dask is imported (the core never imports it).
"""

from __future__ import annotations

from typing import Any

from ...core.resources import usable_cpus
from ...errors import ExecutorError

_INSTALL_HINT = "DaskExecutor needs dask's distributed package: pip install 'asynctune[dask]'"


def import_distributed() -> Any:
    """dask's distributed package, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


def is_client_or_cluster(obj: Any) -> bool:
    return hasattr(obj, "scheduler_address") or (hasattr(obj, "scheduler") and hasattr(obj, "submit"))


def is_security(obj: Any) -> bool:
    """A distributed Security, checked without importing dask (the core never does)."""
    return any(f"{cls.__module__}.{cls.__qualname__}" == "distributed.security.Security" for cls in type(obj).__mro__)


async def scheduler_address(address: Any, security: Any, *, n_workers: int | None,
                            worker_resources: dict[str, float] | None) -> tuple[str, Any, Any]:
    """(scheduler address, Security or None, the LocalCluster started for it or None).

    Example:
        >>> address, security, cluster = await scheduler_address(None, None, n_workers=2, worker_resources=None)
    """
    distributed = import_distributed()
    if address is None:
        cluster = await _start_local_cluster(n_workers, worker_resources)
        return cluster.scheduler_address, cluster.security, cluster
    if isinstance(address, str):
        credentials = security or distributed.security.Security()  # what Client would use: dask's config
        if address.startswith("tls://") and credentials.get_connection_args("client").get("ssl_context") is None:
            raise ExecutorError(f"DaskExecutor: the scheduler at {address} uses TLS: pass "
                                f"security=<your cluster's distributed.security.Security>")
        return address, security, None
    _check_open(address)
    if isinstance(address, distributed.Client):
        return address.scheduler.address, security or address.security, None
    return address.scheduler_address, security or getattr(address, "security", None), None


def _check_open(client_or_cluster: Any) -> None:
    """A Client or Cluster closed before the experiment: say so, rather than an AttributeError
    (a closed Client has no scheduler) or start_timeout_s spent dialling a dead scheduler."""
    status = getattr(client_or_cluster, "status", None)
    status = getattr(status, "value", status)  # a Cluster's is an enum, a Client's a string
    if status in ("closing", "closed", "failed"):
        raise ExecutorError(f"DaskExecutor: the {type(client_or_cluster).__name__} it was given is {status}; "
                            f"pass one that is running (close it after the experiment)")


async def _start_local_cluster(n_workers: int | None, worker_resources: dict[str, float] | None) -> Any:
    from .cluster import start_private_cluster

    n_workers = n_workers or usable_cpus()
    try:
        return await start_private_cluster(n_workers, worker_resources)
    except RuntimeError as exc:
        raise ExecutorError(
            f"DaskExecutor: the LocalCluster's workers failed to start ({exc}). Workers are new "
            f"interpreters that import your script: guard its entry point with "
            f"`if __name__ == '__main__':`"
        ) from exc
