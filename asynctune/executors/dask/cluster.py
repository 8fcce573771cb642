"""The LocalCluster a DaskExecutor starts: TLS with a fresh key, loopback only, no HTTP server.

Whoever can talk to a Dask scheduler can run code in its workers, and the driver unpickles what
the trials' queues hold; so this cluster's scheduler, nannies and workers accept only peers that
present its certificate: `Security.temporary()` makes a self-signed key and certificate in
memory, for this cluster only, shared with its worker processes by their nannies.

Dask's scheduler and workers start an HTTP server (dashboard, Prometheus metrics, JSON pages)
even when the dashboard is off (dask/distributed#7207, #8136); those pages need no certificate,
so the classes here do not start it.

Only executors/dask/scheduler.py imports this module, when a DaskExecutor starts its own cluster.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dask
import distributed
from distributed.security import Security


class PrivateScheduler(distributed.Scheduler):
    """A Scheduler without its HTTP server."""

    def start_http_server(self, *args: Any, **kwargs: Any) -> None:
        pass  # its pages would need no certificate


class PrivateWorker(distributed.Worker):
    """A Worker without its HTTP server, whose trials write private files."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        os.umask(0o077)  # the worker process is ours: what trials write is private to the user
        super().__init__(*args, **kwargs)

    def start_http_server(self, *args: Any, **kwargs: Any) -> None:
        pass  # its pages would need no certificate


class PrivateNanny(distributed.Nanny):
    """A Nanny that starts PrivateWorkers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["worker_class"] = PrivateWorker
        super().__init__(*args, **kwargs)


async def start_private_cluster(n_workers: int, resources: dict[str, float] | None) -> Any:
    """A LocalCluster of `n_workers` single-threaded worker processes, reachable only with its
    own TLS credentials (`cluster.security`), on 127.0.0.1, with no HTTP port."""
    security = Security.temporary()
    # No silent reruns of a trial whose worker died: the controller retries it, from its
    # checkpoint, and counts the failure. No statistical profiler in the workers: its thread
    # takes the GIL every 10 ms, for the dashboard this cluster does not serve, and halved
    # the results a worker's trials could send per second.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.profile.enabled": False}):
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tls",
            security=security, dashboard_address=None, worker_class=PrivateNanny, resources=resources,
            asynchronous=True, silence_logs=logging.ERROR,
        )
        # Built, not started yet (we are on a running loop): swap in the scheduler class.
        cluster.scheduler_spec["cls"] = PrivateScheduler
        return await cluster
