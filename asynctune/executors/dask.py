"""Trials on a Dask cluster: a LocalCluster, Slurm/PBS through dask-jobqueue, Kubernetes, a cloud.

Dask places the trials (workers, resources, lifecycle); their results and decisions travel
on one of two channels (executors/dask_channel.py, the trial's side in dask_worker.py):

- direct, on a cluster with TLS: a Dask task connects to a listener of the driver with
  distributed's comm layer and the cluster's credentials (mutual TLS), and speaks the local
  pipe's protocol on it. It runs further trials on that worker when asked, so a short trial
  pays no task submission.
- queue, on a cluster without TLS (pickles never cross an unauthenticated socket) or when a
  worker cannot reach the driver: a pair of `distributed.Queue`s per trial on the scheduler.

Either way results stream to the driver while the trial runs, and a decision on result k is
in force before step k+1, exactly as with local workers.

Faults: a Dask worker that dies under a trial (its connection closes, the scheduler's
"remove-worker" event, or the task's future erring with KilledWorker) ends the trial's attempt
with a `WorkerLostEvent`; the controller then retries it from its last checkpoint under
`max_failures`. When Dask reruns a task on its own after a worker loss, the rerun is refused
by a handshake: each run of the task introduces itself with a fresh nonce, and only the first
run is told to start. Losing the scheduler raises `ExecutorLost`: the controller ends the
experiment, resumable.

Hosts are Dask workers, named by the worker's name (a worker its nanny restarts keeps it).

The core never imports dask: only these modules do, and only when a DaskExecutor starts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import pickle
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from ..errors import ExecutorError, ExecutorLost
from ..resources import GPU, HostInventory, Placement
from ..trial import Decision, Mutate
from .base import ErrorEvent, Executor, ResultEvent, TrialEvent, TrialRun, WorkerLostEvent
from .dask_channel import QueueLink, Runner, RunnerLink, Runners
from .dask_worker import interrupt_thread, run_over_queues, serve
from .protocol import TrialRequest, WorkerMessages, run_frame
from .tasks import OwnedTasks

logger = logging.getLogger(__name__)

_INSTALL_HINT = "DaskExecutor needs dask's distributed package: pip install 'asynctune[dask]'"
_HEALTH_CHECK_S = 1.0  # how often a waiting trial checks that the scheduler is still there
_CONFIRM_LOSS_S = 5.0  # how long a worker loss the driver saw first may wait for the scheduler to see it
_UNPLACED_S = 10.0  # how long a task pinned to a worker that left may take to start elsewhere
_CHANNELS = ("auto", "direct", "queue")
_SCHEDULER_LOST = "the Dask scheduler was lost"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


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
    """

    def __init__(self, address: Any = None, *, n_workers: int | None = None,
                 worker_resources: dict[str, float] | None = None, min_workers: int = 1,
                 security: Any = None, start_timeout_s: float = 60.0, kill_grace_s: float = 3.0,
                 channel: str = "auto", connect_timeout_s: float = 10.0) -> None:
        if address is not None and not isinstance(address, str) and not _is_client_or_cluster(address):
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
        if security is not None and not _is_security(security):
            raise ValueError(f"DaskExecutor: security must be a distributed.security.Security, got {security!r}")
        if isinstance(min_workers, bool) or not isinstance(min_workers, int) or min_workers < 1:
            raise ValueError(f"DaskExecutor: min_workers must be an integer >= 1, got {min_workers=}")
        if not start_timeout_s > 0:
            raise ValueError(f"DaskExecutor: start_timeout_s must be > 0, got {start_timeout_s=}")
        if not kill_grace_s >= 0:
            raise ValueError(f"DaskExecutor: kill_grace_s must be >= 0, got {kill_grace_s=}")
        if channel not in _CHANNELS:
            raise ValueError(f"DaskExecutor: channel must be one of {', '.join(_CHANNELS)}, got {channel=}")
        if not connect_timeout_s > 0:
            raise ValueError(f"DaskExecutor: connect_timeout_s must be > 0, got {connect_timeout_s=}")
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
        self._workers: dict[str, dict[str, Any]] = {}  # live worker address -> the scheduler's info on it
        self._address_of: dict[str, str] = {}  # host (the worker's name) -> its live address
        self._on_hosts_changed: Any = None
        self._inventories: list[HostInventory] | None = None  # the workers at start()
        self._removed: set[str] = set()
        self._runs: set[_DaskTrialRun] = set()
        self._tasks = OwnedTasks("DaskExecutor")  # decisions, cancellations, task watchers
        self._runners: Runners | None = None  # the direct channel, when the cluster has TLS
        self._fallback_topic = f"asynctune-fallback-{uuid.uuid4().hex[:12]}"
        self._scheduler_lost = False
        self._closed = False

    # Executor ------------------------------------------------------------------------------------

    async def start(self) -> None:
        distributed = _import_distributed()
        await self._tasks.open()
        address, security = await self._scheduler_address(distributed)
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
                                    f"{self.min_workers} worker(s) within {self.start_timeout_s}s: {exc}") from exc
            raise
        self._note_workers(identity.get("workers", {}))
        self._inventories = sorted((_inventory(address, info) for address, info in self._workers.items()),
                                   key=lambda inventory: inventory.name)

    def inventories(self) -> list[HostInventory]:
        if self._inventories is None:
            raise ExecutorError("DaskExecutor.start() was not called")
        return list(self._inventories)

    def host_available(self, host: str) -> bool:
        """A host is a Dask worker's name: available while a worker of that name is up (a
        worker its nanny restarted keeps its name, under a new address)."""
        return host in self._address_of

    def watch_hosts(self, callback: Any) -> None:
        self._on_hosts_changed = callback

    async def launch(self, request: TrialRequest, placement: Placement) -> TrialRun:
        if self._closed or self.client is None:
            raise ExecutorError("DaskExecutor is closed" if self._closed else "DaskExecutor.start() was not called")
        if self._scheduler_lost or self.client.status != "running":
            self._scheduler_lost = True
            raise ExecutorLost(_SCHEDULER_LOST)
        resources = self._dask_resources(placement)
        if self._runners is not None:
            runner = self._runners.idle(placement.host, resources)
            if runner is not None:
                return self._run_on(runner, request)
            self._runners.retire_idle(placement.host)  # its Dask thread is the new task's
        key = f"asynctune-{request.trial_id}-{uuid.uuid4().hex[:12]}"
        # The placement names a worker; should it go before the task starts, Dask may pick
        # another one that has the resources (allow_other_workers) rather than wait for it.
        address = self._address_of.get(placement.host)
        where = {"workers": [address], "allow_other_workers": True} if address else {}
        # Pickled here, so Dask ships the request as it is instead of walking it as a task graph
        # (which would turn its lists into tuples).
        if not self.client.scheduler.address.startswith("tls://"):
            # The signing key never crosses a socket in the clear: workers sign with their user's key.
            request = replace(request, signing_key=b"")
        blob = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        options = {"key": key, "pure": False, "retries": 0, "resources": resources or None, **where}
        if self._runners is not None:
            future = self.client.submit(serve, blob, self._runners.address, self._fallback_topic,
                                        self.connect_timeout_s, **options)
            run = _DaskTrialRun(self, request, future)
            runner = self._runners.add(key, future, resources)
            runner.trainables.add(request.trainable_key)
            run.link = runner.link_for(run)
        else:
            try:
                outbox, inbox = await self._open_queues(key)
            except OSError as exc:  # CommClosedError is an OSError
                raise ExecutorLost(self._scheduler_lost_reason(exc)) from exc
            future = self.client.submit(run_over_queues, blob, outbox.name, inbox.name, **options)
            run = _DaskTrialRun(self, request, future)
            run.link = self._queue_link(run, key, outbox, inbox)
        run.host, run.pinned = placement.host, address
        self._runs.add(run)
        return run

    def _run_on(self, runner: Runner, request: TrialRequest) -> TrialRun:
        """The next trial on an idle runner: one message, no task, no import."""
        run = _DaskTrialRun(self, request, runner.future)
        info = runner.info
        run.host, run.worker_address, run.pid, run.thread_id, run._nonce = (
            runner.host, info["worker"], info["pid"], info["thread"], info["nonce"])
        run.link = runner.link_for(run)
        if request.trainable_key in runner.trainables:
            request = replace(request, trainable_blob=None)  # its worker holds it already
        runner.trainables.add(request.trainable_key)
        runner.send_frame(run_frame(request))
        self._runs.add(run)
        return run

    async def close(self) -> None:
        self._closed = True
        for run in list(self._runs):
            run.lose("the executor was closed")
            run._outcome.cancel()
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
        runners = Runners(self._spawn, self._cancel, _host_name)
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

    async def _fall_back(self, run: _DaskTrialRun, key: str) -> None:
        try:
            outbox, inbox = await self._open_queues(key)
        except Exception as exc:
            run.lose(self._scheduler_lost_reason(exc))
            return
        run.link = self._queue_link(run, key, outbox, inbox)
        if run._ended:
            run.link.release(False)

    async def _open_queues(self, key: str) -> tuple[Any, Any]:
        """A trial's two queues on the scheduler: its messages out, its decisions in."""
        distributed = _import_distributed()
        return tuple(await asyncio.gather(distributed.Queue(f"{key}-out", client=self.client),
                                          distributed.Queue(f"{key}-in", client=self.client)))

    def _queue_link(self, run: _DaskTrialRun, key: str, outbox: Any, inbox: Any) -> QueueLink:
        return QueueLink(self._spawn, run.trial_id, outbox, inbox, run.mailbox,
                         on_error=lambda exc: run.lose(self._scheduler_lost_reason(exc)),
                         cancel=lambda: self._cancel(run.future))

    def _cancel(self, future: Any) -> None:
        """Release a task that still runs (lost, killed), so Dask does not run it again."""
        client = self.client
        if client is not None and client.status == "running" and not future.done():
            self._spawn(_quietly(client.cancel([future])), f"dask-cancel-{future.key}")

    # Cluster -------------------------------------------------------------------------------------

    async def _scheduler_address(self, distributed: Any) -> tuple[str, Any]:
        if self.address is None:
            self.cluster = await self._start_local_cluster(distributed)
            return self.cluster.scheduler_address, self.cluster.security
        if isinstance(self.address, str):
            security = self.security or distributed.security.Security()  # what Client would use: dask's config
            if self.address.startswith("tls://") and security.get_connection_args("client").get("ssl_context") is None:
                raise ExecutorError(f"DaskExecutor: the scheduler at {self.address} uses TLS: pass "
                                    f"security=<your cluster's distributed.security.Security>")
            return self.address, self.security
        if isinstance(self.address, distributed.Client):
            return self.address.scheduler.address, self.security or self.address.security
        return self.address.scheduler_address, self.security or getattr(self.address, "security", None)

    async def _start_local_cluster(self, distributed: Any) -> Any:
        from .dask_cluster import start_private_cluster

        n_workers = self.n_workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                       else os.cpu_count() or 1)
        try:
            return await start_private_cluster(n_workers, self.worker_resources)
        except RuntimeError as exc:
            raise ExecutorError(
                f"DaskExecutor: the LocalCluster's workers failed to start ({exc}). Workers are new "
                f"interpreters that import your script: guard its entry point with "
                f"`if __name__ == '__main__':`"
            ) from exc

    def _dask_resources(self, placement: Placement) -> dict[str, float]:
        """The placement in Dask's terms, for the resources the workers declare."""
        declared = {name for info in self._workers.values() for name in info.get("resources", {})}
        resources: dict[str, float] = {}
        gpu = sum(fraction for _, fraction in placement.gpus)
        if gpu > 0:
            resources["GPU"] = gpu
        if "CPU" in declared and placement.cpu > 0:
            resources["CPU"] = placement.cpu
        return resources

    def _on_cluster_event(self, event: Any) -> None:
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if not isinstance(message, dict):
            return
        action, address = message.get("action"), message.get("worker")
        if action == "remove-worker" and address:
            self._worker_removed(address)
        elif action == "add-worker" and address:
            self._removed.discard(address)
            self._spawn(self._refresh_workers(), "dask-refresh-workers")

    def _worker_removed(self, address: str) -> None:
        """The scheduler removed this worker: its trials are lost, and no trial is placed on its
        address again (a worker its nanny restarts joins under a new one)."""
        if address in self._removed:
            return
        self._removed.add(address)
        info = self._workers.pop(address, None)
        if info is not None and self._address_of.get(_host_name(address, info)) == address:
            del self._address_of[_host_name(address, info)]
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
        self._note_workers(identity.get("workers", {}))
        self._hosts_changed()

    def _note_workers(self, workers: dict[str, dict[str, Any]]) -> None:
        for address, info in workers.items():
            if address not in self._removed:
                self._workers[address] = info
                self._address_of[_host_name(address, info)] = address

    def _hosts_changed(self) -> None:
        if self._on_hosts_changed is not None:
            self._on_hosts_changed()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any] | None:
        """A background task owned by this executor: close() ends whatever is left of it."""
        return self._tasks.spawn(coro, name)

    def _forget(self, run: _DaskTrialRun) -> None:
        self._runs.discard(run)

    def _scheduler_lost_reason(self, exc: BaseException) -> str:
        self._scheduler_lost = True
        return f"{_SCHEDULER_LOST} ({type(exc).__name__}: {exc})"


def _is_client_or_cluster(obj: Any) -> bool:
    return hasattr(obj, "scheduler_address") or (hasattr(obj, "scheduler") and hasattr(obj, "submit"))


def _is_security(obj: Any) -> bool:
    """A distributed Security, checked without importing dask (the core never does)."""
    return any(f"{cls.__module__}.{cls.__qualname__}" == "distributed.security.Security" for cls in type(obj).__mro__)


def _host_name(address: str, info: dict[str, Any]) -> str:
    name = info.get("name")
    return address if name is None or name == "" else str(name)


def _inventory(address: str, info: dict[str, Any]) -> HostInventory:
    """One Dask worker as a host, named by the worker's name: its CPU resource (else its
    threads) and its GPU resource."""
    resources = info.get("resources", {}) or {}
    cpus = float(resources.get("CPU", info.get("nthreads", 1)))
    gpus = [GPU(index=i) for i in range(math.ceil(float(resources.get("GPU", 0)) - 1e-9))]
    return HostInventory(name=_host_name(address, info), cpus=cpus, gpus=gpus,
                         memory_mb=float(info.get("memory_limit") or 0) / 2**20)


_LOST = object()  # in a run's mailbox: the attempt was lost (its reason in `_lost`)


class _DaskTrialRun(TrialRun):
    """One attempt of a trial: a Dask task (its runner's, on the direct channel), whose
    messages arrive in `mailbox` and whose decisions leave through `link`."""

    def __init__(self, executor: DaskExecutor, request: TrialRequest, future: Any) -> None:
        self.executor = executor
        self.request = request
        self.trial_id = request.trial_id
        self.future = future
        self.mailbox: asyncio.Queue[Any] = asyncio.Queue()
        self.link: Any = None  # a RunnerLink or a QueueLink, set by the executor
        self.worker_address: str | None = None
        self.pinned: str | None = None  # the worker address its task was submitted to
        self._unplaced_since: float | None = None  # when the health check saw `pinned` gone, the task not started
        self.thread_id: int | None = None
        self._nonce: str | None = None
        self._lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        outcome = executor._spawn(self._watch_future(), f"dask-future-{request.trial_id}")
        assert outcome is not None, "launch() runs between start() and close()"
        outcome.add_done_callback(self._on_outcome)
        self._outcome = outcome
        self._messages = WorkerMessages(f"trial {request.trial_id}'s Dask task")
        self._ended = False
        self._over: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # events() ended
        self._clean = False  # the trial said how it ended, and was not killed: its runner may go on
        self._killed = False
        self._reading = False  # events() began

    # TrialRun ------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[TrialEvent]:
        self._reading = True
        health = self.executor._spawn(self._watch_health(), f"dask-health-{self.trial_id}")
        try:
            while True:
                message = await self.mailbox.get()  # the hot path: one await per message
                if message is _LOST:
                    # Results the trial sent before it was lost are still worth keeping.
                    for message in await self._drain():
                        event = self._handle(message)
                        if event is not None:
                            yield event
                            if not isinstance(event, ResultEvent):
                                return
                    if self.executor._scheduler_lost:
                        raise ExecutorLost(self._lost.result())
                    yield WorkerLostEvent(self._lost.result(), None, "")
                    return
                event = self._handle(message)
                if event is not None:
                    if not isinstance(event, ResultEvent):
                        self._clean = not self._killed
                        if event.__class__ is ErrorEvent and isinstance(self.link, RunnerLink):
                            # The worker may have failed to unpickle the trainable: send it again next time.
                            self.link.runner.trainables.discard(self.request.trainable_key)
                    yield event
                    if not isinstance(event, ResultEvent):
                        return
        finally:
            self._ended = True
            if not self._over.done():
                self._over.set_result(None)
            if health is not None:
                health.cancel()
            self._finish()

    def decide(self, decision: Decision | Mutate) -> None:
        if self._messages.answering():
            self.link.send_decision(decision)

    async def kill(self) -> None:
        """Stop at the trial's next report; then interrupt its thread; then (on our own
        LocalCluster) restart its worker. Whatever the worker does, events() ends."""
        if self._ended or self._lost.done():
            return
        self._killed = True  # its runner, if any, is not used again: an interrupt may still land
        self._send("STOP")  # read at once if the trial waits for a decision, else at its next report
        if not self._reading:  # killed as it started: nobody reads it, events() reports the loss
            self.lose("the trial was killed")
            return
        grace = self.executor.kill_grace_s
        if not await self._stopped_within(grace / 2):
            await self._interrupt()
            if not await self._stopped_within(grace / 2):
                await self._restart_worker()
        self.lose("the trial was killed")

    # Messages ------------------------------------------------------------------------------------

    def _handle(self, message: Any) -> TrialEvent | None:
        if message[0] in ("started", "hello"):
            self._on_started(message[1])
            return None
        return self._messages.event(message)

    def _on_started(self, info: dict[str, Any]) -> None:
        if self._nonce is None and not self._lost.done():
            self._nonce = info["nonce"]
            self.worker_address = info["worker"]
            self.host, self.pid, self.thread_id = info["worker"], info["pid"], info["thread"]
            if self.worker_address in self.executor._removed:
                self.lose(f"the Dask worker {self.worker_address} was lost")
                return
            self._send(("RUN", self._nonce))
            return
        # Dask ran the task again (its first worker died): that run must not train; the
        # controller retries the trial itself, from its checkpoint.
        self._send(("ABANDON", info["nonce"]))
        self.lose(f"the Dask worker {self.worker_address} was lost (Dask started the trial again elsewhere)")

    def _send(self, message: Any) -> None:
        self.link.send(message)

    async def _drain(self) -> list[Any]:
        messages = []
        await self.link.drain(self.executor.client is not None and not self.executor._scheduler_lost)
        while not self.mailbox.empty():
            message = self.mailbox.get_nowait()
            if message is not _LOST:
                messages.append(message)
        return messages

    # Faults ----------------------------------------------------------------------------------------

    async def _watch_future(self) -> str | None:
        """None when the task returned; else why it did not (KilledWorker, cancelled, lost)."""
        try:
            await self.future
        except asyncio.CancelledError:
            if self.future.status == "cancelled":
                return "the Dask task was cancelled"
            raise
        except Exception as exc:
            name = type(exc).__name__
            if name == "KilledWorker":
                # The scheduler removed the worker; its event may come later: no trial goes there.
                if self.worker_address is not None:
                    self.executor._worker_removed(self.worker_address)
                return f"the Dask worker died under the trial ({exc})"
            return f"the Dask task failed: {name}: {exc}"
        return None

    def lose_worker(self, address: str, reason: str) -> None:
        """Its connection closed under the trial: its worker most likely died. The attempt ends
        once the scheduler has removed the worker too (at most `_CONFIRM_LOSS_S` later), so the
        controller does not place the next trial on the dead worker's address: a task pinned
        there while no worker runs would wait forever, as Dask does not move such a task to a
        worker that joins later, not even with allow_other_workers."""
        if self._lost.done():
            return
        if self.executor._spawn(self._lose_when_removed(address, reason), f"dask-lost-{self.trial_id}") is None:
            self.lose(reason)  # the executor is closing

    async def _lose_when_removed(self, address: str, reason: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONFIRM_LOSS_S
        while not self._lost.done() and address not in self.executor._removed and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.lose(reason)

    def lose(self, reason: str) -> None:
        """End the attempt as lost: events() reads what came before, then reports the loss."""
        if not self._lost.done():
            self._lost.set_result(reason)
            self.mailbox.put_nowait(_LOST)

    def _on_outcome(self, outcome: asyncio.Task[str | None]) -> None:
        if not outcome.cancelled() and outcome.result() is not None:
            self.lose(outcome.result())

    async def _watch_health(self) -> None:
        while not self._lost.done():
            await asyncio.sleep(_HEALTH_CHECK_S)
            self._check_health()

    def _check_health(self) -> None:
        client = self.executor.client
        if client is None or client.status != "running":
            self.executor._scheduler_lost = True
            self.lose(_SCHEDULER_LOST)
        elif self.worker_address is not None and self.worker_address in self.executor._removed:
            self.lose(f"the Dask worker {self.worker_address} was lost")
        elif self._nonce is None and self.pinned is not None and self.pinned in self.executor._removed:
            # Its task never started, and the worker it was submitted to left: Dask may keep it
            # waiting for that worker forever ("no-worker"), whoever joins later. A bounded wait
            # for it to start elsewhere, then the attempt is lost (the controller may retry it).
            now = asyncio.get_running_loop().time()
            self._unplaced_since = self._unplaced_since or now
            if now - self._unplaced_since >= _UNPLACED_S:
                self.lose(f"the Dask worker {self.pinned} left before the trial's task started there, and "
                          f"Dask did not start it elsewhere within {_UNPLACED_S:g}s")

    async def _stopped_within(self, seconds: float) -> bool:
        """Whether the trial ended (or its task did, or the attempt is already lost) within `seconds`."""
        done, _ = await asyncio.wait({self._outcome, self._lost, self._over}, timeout=seconds,
                                     return_when=asyncio.FIRST_COMPLETED)
        return bool(done)

    async def _interrupt(self) -> None:
        client = self.executor.client
        if client is None or self.worker_address is None or self.thread_id is None:
            return
        try:
            await asyncio.wait_for(client.run(interrupt_thread, self.thread_id, workers=[self.worker_address]),
                                   _HEALTH_CHECK_S * 5)
        except Exception as exc:
            logger.debug("could not interrupt trial %s: %s", self.trial_id, exc)

    async def _restart_worker(self) -> None:
        client = self.executor.client
        if self.executor.cluster is None or client is None or self.worker_address is None:
            logger.warning("trial %s did not stop within %ss; it may still run on Dask worker %s",
                           self.trial_id, self.executor.kill_grace_s, self.worker_address)
            return
        try:
            await asyncio.wait_for(client.restart_workers([self.worker_address]), 30)
        except Exception as exc:
            logger.warning("could not restart Dask worker %s: %s", self.worker_address, exc)

    def _finish(self) -> None:
        """Let go of this attempt: its runner takes the next trial if it ended cleanly, else
        its task is cancelled (lost, killed) and its queues closed."""
        self.executor._forget(self)
        if not self._outcome.done():
            self._outcome.cancel()
        if self.link is not None:
            self.link.release(self._clean)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        logger.debug("Dask cleanup: %s", exc)
