"""Trials on a Dask cluster: a LocalCluster, Slurm/PBS through dask-jobqueue, Kubernetes, a cloud.

Dask places the trials (workers, resources, lifecycle); their results and decisions travel
on one of two channels (executors/dask/channel.py, the trial's side in worker.py):

- direct, on a cluster with TLS: a Dask task connects to a listener of the driver with
  distributed's comm layer and the cluster's credentials (mutual TLS), and speaks the local
  pipe's protocol on it. It runs further trials on that worker when asked, so a short trial
  pays no task submission.
- queue, on a cluster without TLS (pickles never cross an unauthenticated socket) or when a
  worker cannot reach the driver: a pair of `distributed.Queue`s per trial on the scheduler.

Either way results stream to the driver while the trial runs, and a decision on result k is
in force before step k+1 (Dask trials never run pipelined, whatever the scheduler allows).

Faults: a Dask worker that dies under a trial (its connection closes, the scheduler's
"remove-worker" event, or the task's future erring with KilledWorker) ends the trial's attempt
with a `WorkerLostEvent`; the controller then retries it from its last checkpoint under
`max_failures`. When Dask reruns a task on its own after a worker loss, the rerun is refused
by a handshake: each run of the task introduces itself with a fresh nonce, and only the first
run is told to start. Losing the scheduler raises `ExecutorLost`: the controller ends the
experiment, resumable.

Hosts are Dask workers, named by the worker's name (a worker its nanny restarts keeps it).

The package, one job a module: this one (the executor: launch, channels, cluster events),
trial_run.py (one attempt: its events, its decisions, its faults), roster.py (the workers as
hosts), scheduler.py (where the scheduler is), cluster.py (the private LocalCluster),
channel.py (the driver's side of the channels), worker.py (the trial's side, in a Dask task).
The core never imports dask: only these modules do, and only when a DaskExecutor starts.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import uuid
from dataclasses import replace
from typing import Any

from ...errors import ExecutorError, ExecutorLost
from ...core.resources import HostInventory, Placement, usable_cpus
from ..base import Executor, TrialRun
from .channel import QueueLink, Runner, Runners
from .roster import WorkerRoster, host_name
from .scheduler import import_distributed, is_client_or_cluster, is_security, scheduler_address
from .trial_run import SCHEDULER_LOST, DaskTrialRun
from .worker import run_over_queues, serve
from ...worker.protocol import TrialRequest, run_frame
from ..pipe_worker import send_once
from ..tasks import OwnedTasks

logger = logging.getLogger(__name__)

_CHANNELS = ("auto", "direct", "queue")

class DaskExecutor(Executor):
    """Runs trials as tasks on a Dask cluster.

    With no address, a `distributed.LocalCluster` on this machine: one single-threaded worker
    process per CPU, on 127.0.0.1 only, reachable only over TLS with credentials made for it
    (`Security.temporary()`), with no dashboard or other HTTP port. With an address, a Client or
    a Cluster (dask-jobqueue's SLURMCluster, dask-kubernetes' KubeCluster, ...), an existing
    cluster; its workers must be able to import asynctune and your trainable, and see
    `storage_path` (a shared file system) so a trial can resume on another worker. See
    docs/dask.md, "Security": anyone who can connect to a scheduler can run code as its user.

    Example:
        >>> from dask_jobqueue import SLURMCluster
        >>> cluster = SLURMCluster(cores=1, processes=1, memory="8GB", job_extra_directives=["--gres=gpu:1"],
        ...                        worker_extra_args=["--resources", "GPU=1"])
        >>> cluster.scale(8)
        >>> asynctune.run(train, config=space, executor=DaskExecutor(cluster, min_workers=8),
        ...               resources_per_trial={"gpu": 1}, storage_path="/shared/results")

    Args:
        address: None (a LocalCluster), a scheduler address such as "tcp://scheduler:8786",
            or a `distributed.Client` / `Cluster` whose scheduler to use. The executor opens
            its own asynchronous client on the experiment's event loop either way.
        n_workers: Workers of the LocalCluster (default: the CPUs this process may use).
        worker_resources: Dask resources every LocalCluster worker declares, e.g. {"GPU": 1}.
        min_workers: start() waits until this many workers have joined (default 1): a
            cluster that scales up must have its workers before placement is planned.
        security: The `distributed.security.Security` (TLS certificates) to reach the
            scheduler at `address` with; default: the Client's or Cluster's own `security`.
        start_timeout_s: How long start() waits for the scheduler and the workers.
        kill_grace_s: How long a killed trial may take to stop before it is interrupted, then
            (on the LocalCluster this executor owns) before its worker is restarted.
        channel: How results and decisions travel (docs/dask.md): "auto" (default) a direct
            connection from each worker to the driver when the cluster uses TLS, else the
            scheduler's queues; "direct" requires the direct channel (start() fails on a
            cluster without TLS); "queue" always the scheduler's queues.
        connect_timeout_s: How long a worker tries to reach the driver's channel before its
            trial falls back to the scheduler's queues.

    Attributes:
        workers: The cluster's workers as this executor last saw them (`WorkerRoster`), e.g.
            `executor.workers.address_of("gpu-3")`, the live address of the worker named "gpu-3".
    """

    def __init__(self, address: Any = None, *, n_workers: int | None = None,
                 worker_resources: dict[str, float] | None = None, min_workers: int = 1,
                 security: Any = None, start_timeout_s: float = 60.0, kill_grace_s: float = 3.0,
                 channel: str = "auto", connect_timeout_s: float = 10.0) -> None:
        if address is not None and not isinstance(address, str) and not is_client_or_cluster(address):
            raise ValueError(f"DaskExecutor: address must be None, a scheduler address, a distributed Client "
                             f"or a Cluster, got {address!r}")
        if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
            raise ValueError(f"DaskExecutor: n_workers must be an integer >= 1, got {n_workers=}")
        if n_workers is not None and address is not None:
            raise ValueError(f"DaskExecutor: n_workers sizes the LocalCluster started without an address; "
                             f"scale your own cluster instead (got {n_workers=} and {address=})")
        if worker_resources is not None and address is not None:
            raise ValueError("DaskExecutor: worker_resources applies to the LocalCluster started without an "
                             "address; declare resources on your own workers (dask worker --resources GPU=1)")
        if worker_resources is not None and (
            not isinstance(worker_resources, dict)
            or not all(isinstance(k, str) and isinstance(v, (int, float)) and v >= 0 for k, v in worker_resources.items())
        ):
            raise ValueError(f"DaskExecutor: worker_resources must map names to amounts >= 0, got {worker_resources=}")
        if security is not None and address is None:
            raise ValueError("DaskExecutor: security applies to a scheduler address; the LocalCluster started "
                             "without an address makes its own TLS credentials")
        if security is not None and not is_security(security):
            raise ValueError(f"DaskExecutor: security must be a distributed.security.Security, got {security!r}")
        if isinstance(address, str) and not address.strip():
            raise ValueError("DaskExecutor: address is empty; give a scheduler address such as "
                             "'tls://scheduler:8786', or None for a LocalCluster")
        if isinstance(min_workers, bool) or not isinstance(min_workers, int) or min_workers < 1:
            raise ValueError(f"DaskExecutor: min_workers must be an integer >= 1, got {min_workers=}")
        if address is None and min_workers > (n_workers or usable_cpus()):
            # The LocalCluster would never have them: start() would wait start_timeout_s, then fail.
            raise ValueError(f"DaskExecutor: min_workers={min_workers} exceeds the {n_workers or usable_cpus()} "
                             f"worker(s) of the LocalCluster it starts; raise n_workers= or lower min_workers=")
        if not _is_number(start_timeout_s) or not start_timeout_s > 0:
            raise ValueError(f"DaskExecutor: start_timeout_s must be a number > 0, got {start_timeout_s=}")
        if not _is_number(kill_grace_s) or not kill_grace_s >= 0:
            raise ValueError(f"DaskExecutor: kill_grace_s must be a number >= 0, got {kill_grace_s=}")
        if channel not in _CHANNELS:
            raise ValueError(f"DaskExecutor: channel must be one of {', '.join(_CHANNELS)}, got {channel=}")
        if not _is_number(connect_timeout_s) or not connect_timeout_s > 0:
            raise ValueError(f"DaskExecutor: connect_timeout_s must be a number > 0, got {connect_timeout_s=}")
        self.address = address
        self.n_workers = n_workers
        self.worker_resources = dict(worker_resources) if worker_resources else None
        self.min_workers = min_workers
        self.security = security
        self.start_timeout_s = start_timeout_s
        self.kill_grace_s = kill_grace_s
        self.channel = channel
        self.connect_timeout_s = connect_timeout_s
        self.client: Any = None  # our distributed.Client (asynchronous), after start()
        self.cluster: Any = None  # the LocalCluster we started, if we started one
        self._on_hosts_changed: Any = None
        self._tasks = OwnedTasks("DaskExecutor")  # decisions, cancellations, task watchers
        self._new_experiment()

    def _new_experiment(self) -> None:
        """What one experiment's start() learns and close() leaves behind: the executor may be
        used again for another experiment (then with a fresh LocalCluster, if it starts one)."""
        self.workers = WorkerRoster()  # the cluster's workers, as hosts
        self._inventories: list[HostInventory] | None = None  # the workers at start()
        self._runs: set[DaskTrialRun] = set()
        self._runners: Runners | None = None  # the direct channel, when the cluster has TLS
        self._fallback_topic = f"asynctune-fallback-{uuid.uuid4().hex[:12]}"
        self._scheduler_lost = False
        self._closed = False

    # Executor ------------------------------------------------------------------------------------

    async def start(self) -> None:
        distributed = import_distributed()
        if self._closed:  # used again, for another experiment
            self._new_experiment()
        address, security, self.cluster = await scheduler_address(
            self.address, self.security, n_workers=self.n_workers, worker_resources=self.worker_resources)
        await self._tasks.open()
        try:
            self.client = await distributed.Client(address, asynchronous=True, security=security,
                                                   timeout=self.start_timeout_s, set_as_default=False)
            self.client.subscribe_topic("all", self._on_cluster_event)
            await self.client.wait_for_workers(self.min_workers, timeout=self.start_timeout_s)
            identity = await self.client.scheduler.identity()
            await self._open_channel()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
                raise ExecutorError(f"DaskExecutor: could not reach the scheduler at {address} with "
                                    f"{self.min_workers} worker(s) within {self.start_timeout_s}s: {exc}"
                                    f"{_tls_hint(address, exc)}") from exc
            raise
        self.workers.note(identity.get("workers", {}))
        self._inventories = self.workers.inventories()

    def inventories(self) -> list[HostInventory]:
        if self._inventories is None:
            raise ExecutorError("DaskExecutor.start() was not called")
        return list(self._inventories)

    def host_available(self, host: str) -> bool:
        """A host is a Dask worker's name: available while a worker of that name is up (a
        worker its nanny restarted keeps its name, under a new address)."""
        return self.workers.address_of(host) is not None

    def watch_hosts(self, callback: Any) -> None:
        self._on_hosts_changed = callback

    async def launch(self, request: TrialRequest, placement: Placement) -> TrialRun:
        if self._closed or self.client is None:
            raise ExecutorError("DaskExecutor is closed" if self._closed else "DaskExecutor.start() was not called")
        if self._scheduler_lost or self.client.status != "running":
            self._scheduler_lost = True
            raise ExecutorLost(SCHEDULER_LOST)
        resources = self.workers.resources_for(placement)
        if self._runners is not None:
            runner = self._runners.idle(placement.host, resources)
            if runner is not None:
                return self._run_on(runner, request)
            self._runners.retire_idle(placement.host)  # its Dask thread is the new task's
        key = f"asynctune-{request.trial_id}-{uuid.uuid4().hex[:12]}"
        # The placement names a worker; should it go before the task starts, Dask may pick
        # another one that has the resources (allow_other_workers) rather than wait for it.
        address = self.workers.address_of(placement.host)
        where = {"workers": [address], "allow_other_workers": True} if address else {}
        if not self.client.scheduler.address.startswith("tls://"):
            # The signing key never crosses a socket in the clear: workers sign with their user's key.
            request = replace(request, signing_key=b"")
        # Pickled here, so Dask ships the request as it is instead of walking it as a task graph
        # (which would turn its lists into tuples).
        blob = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        options = {"key": key, "pure": False, "retries": 0, "resources": resources or None, **where}
        if self._runners is not None:
            future = self.client.submit(serve, blob, self._runners.address, self._fallback_topic,
                                        self.connect_timeout_s, **options)
            run = DaskTrialRun(self, request, future)
            runner = self._runners.add(key, future, resources)
            runner.trainables.add(request.trainable_key)
            run.link = runner.link_for(run)
        else:
            try:
                outbox, inbox = await self._open_queues(key)
            except OSError as exc:  # CommClosedError is an OSError
                raise ExecutorLost(self._scheduler_lost_reason(exc)) from exc
            future = self.client.submit(run_over_queues, blob, outbox.name, inbox.name, **options)
            run = DaskTrialRun(self, request, future)
            run.link = self._queue_link(run, key, outbox, inbox)
        run.host, run.pinned = placement.host, address
        self._runs.add(run)
        return run

    def _run_on(self, runner: Runner, request: TrialRequest) -> TrialRun:
        """The next trial on an idle runner: one message, no task, no import."""
        run = DaskTrialRun(self, request, runner.future)
        run.runs_on(runner)
        request = send_once(runner.trainables, request)  # its worker may hold the trainable already
        runner.send_frame(run_frame(request))
        self._runs.add(run)
        return run

    async def close(self) -> None:
        self._closed = True
        for run in list(self._runs):
            run.abandon("the executor was closed")
        if self._runners is not None:
            await self._runners.close()
        # Decisions and cancellations in flight may finish; none may outlive the client.
        await self._tasks.close(grace_s=5)
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        try:
            if client is not None:
                client.unsubscribe_topic("all")
                if self._runners is not None:
                    client.unsubscribe_topic(self._fallback_topic)
                await asyncio.wait_for(client.close(), 10)
        except Exception as exc:  # closing a client whose scheduler is gone may fail; the cluster must still go
            logger.debug("closing the Dask client: %s", exc)
        finally:
            if cluster is not None:
                await asyncio.wait_for(cluster.close(), 30)

    # Channels ------------------------------------------------------------------------------------

    async def _open_channel(self) -> None:
        """The direct channel where the cluster authenticates every peer with TLS; else the
        scheduler's queues, and the log says why."""
        if self.channel == "queue":
            return
        security = self.client.security
        if not self.client.scheduler.address.startswith("tls://") or \
                security.get_listen_args("client").get("ssl_context") is None:
            if self.channel == "direct":
                raise ExecutorError("DaskExecutor: channel='direct' needs a cluster with TLS credentials "
                                    "(distributed.security.Security); this one has none")
            logger.warning("DaskExecutor: the cluster at %s does not use TLS, so trial results go through "
                           "the scheduler's queues (a direct channel would carry pickles over an "
                           "unauthenticated socket)", self.client.scheduler.address)
            return
        from distributed.comm import get_address_host

        # The interface this driver reaches the scheduler from: the workers' side of the cluster.
        host = get_address_host(self.client.scheduler_comm.comm.local_address)
        runners = Runners(self._spawn, self._cancel, host_name)
        await runners.start(host, security)
        self._runners = runners
        self.client.subscribe_topic(self._fallback_topic, self._on_fallback)
        logger.debug("DaskExecutor: trials connect to %s", runners.address)

    def _on_fallback(self, event: Any) -> None:
        """A worker could not reach the driver: its trial goes through the scheduler's queues."""
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        runner = self._runners.get(message.get("key", "")) if self._runners and isinstance(message, dict) else None
        if runner is None or runner.run is None:
            return
        run = runner.run
        runner.closed = True  # never connected; its task goes on, over the queues
        self._runners.forget(runner)
        logger.warning("DaskExecutor: the Dask worker %s could not reach the driver at %s (%s); trial %s's "
                       "results go through the scheduler's queues", message.get("worker"), self._runners.address,
                       message.get("error"), run.trial_id)
        self._spawn(self._fall_back(run, runner.key), f"dask-fallback-{run.trial_id}")

    async def _fall_back(self, run: DaskTrialRun, key: str) -> None:
        try:
            outbox, inbox = await self._open_queues(key)
        except Exception as exc:
            run.lose(self._scheduler_lost_reason(exc))
            return
        run.link = self._queue_link(run, key, outbox, inbox)
        if run.ended:
            run.link.release(False)

    async def _open_queues(self, key: str) -> tuple[Any, Any]:
        """A trial's two queues on the scheduler: its messages out, its decisions in."""
        distributed = import_distributed()
        return tuple(await asyncio.gather(distributed.Queue(f"{key}-out", client=self.client),
                                          distributed.Queue(f"{key}-in", client=self.client)))

    def _queue_link(self, run: DaskTrialRun, key: str, outbox: Any, inbox: Any) -> QueueLink:
        return QueueLink(self._spawn, run.trial_id, outbox, inbox, run.mailbox,
                         on_error=lambda exc: run.lose(self._scheduler_lost_reason(exc)),
                         cancel=lambda: self._cancel(run.future))

    def _cancel(self, future: Any) -> None:
        """Release a task that still runs (lost, killed), so Dask does not run it again."""
        client = self.client
        if client is not None and client.status == "running" and not future.done():
            self._spawn(_quietly(client.cancel([future])), f"dask-cancel-{future.key}")

    # Workers joining and leaving ------------------------------------------------------------------

    def _on_cluster_event(self, event: Any) -> None:
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if not isinstance(message, dict):
            return
        action, address = message.get("action"), message.get("worker")
        if action == "remove-worker" and address:
            self._worker_removed(address)
        elif action == "add-worker" and address:
            self.workers.rejoined(address)
            self._spawn(self._refresh_workers(), "dask-refresh-workers")

    def _worker_removed(self, address: str) -> None:
        """The scheduler removed this worker: its trials are lost, and no trial is placed on its
        address again (a worker its nanny restarts joins under a new one)."""
        if not self.workers.remove(address):
            return
        for run in list(self._runs):
            if run.worker_address == address:
                run.lose(f"the Dask worker {address} was lost")
        self._hosts_changed()

    async def _refresh_workers(self) -> None:
        """Learn a worker that joined (the event names its address only, not its name)."""
        try:
            identity = await self.client.scheduler.identity()
        except Exception as exc:  # the scheduler's loss is noticed by the trials' health checks
            logger.debug("could not list the Dask workers: %s", exc)
            return
        self.workers.note(identity.get("workers", {}))
        self._hosts_changed()

    def _hosts_changed(self) -> None:
        if self._on_hosts_changed is not None:
            self._on_hosts_changed()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any] | None:
        """A background task owned by this executor: close() ends whatever is left of it."""
        return self._tasks.spawn(coro, name)

    def _forget(self, run: DaskTrialRun) -> None:
        self._runs.discard(run)

    def _scheduler_lost_reason(self, exc: BaseException) -> str:
        self._scheduler_lost = True
        return f"{SCHEDULER_LOST} ({type(exc).__name__}: {exc})"


def _tls_hint(address: str, exc: BaseException) -> str:
    """A scheduler that speaks TLS resets a plain connection: say so, as the reset alone does not."""
    if address.startswith("tls://") or "Connection reset" not in str(exc):
        return ""
    return (". A scheduler that uses TLS resets plain connections: give its tls:// address and "
            "security=<its distributed.security.Security>")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        logger.debug("Dask cleanup: %s", exc)
