"""Trials on a Dask cluster: a LocalCluster, Slurm/PBS through dask-jobqueue, Kubernetes, a cloud.

Each trial is one Dask task. Inside it the usual trial side runs (`TrialSession`,
`run_function`, `run_class`); its channel to the driver is a pair of `distributed.Queue`s that
live on the Dask scheduler, one for the trial's messages (results, then its end) and one for
the driver's answers (decisions). So results stream to the driver while the trial runs, and a
decision on result k is in force before step k+1, exactly as with local workers. Every byte
goes through Dask's own comms; nothing here listens on a socket.

Faults: a Dask worker that dies under a trial (the scheduler's "remove-worker" event, or the
task's future erring with KilledWorker) ends the trial's attempt with a `WorkerLostEvent`; the
controller then retries it from its last checkpoint under `max_failures`. When Dask reruns a
task on its own after a worker loss, the rerun is refused by a handshake: each run of the task
introduces itself with a fresh nonce, and only the first run is told to start. Losing the
scheduler raises `ExecutorLost`: the controller ends the experiment, resumable.

Hosts are Dask workers, named by the worker's name (a worker its nanny restarts keeps it).

The core never imports dask: only this module does, and only when a DaskExecutor starts.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import pickle
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

from .. import session as session_module
from ..errors import AsynctuneError, ExecutorError, ExecutorLost
from ..resources import GPU, HostInventory, Placement
from ..trial import Decision, Mutate
from .base import DoneEvent, ErrorEvent, Executor, ResultEvent, TrialEvent, TrialRun, WorkerLostEvent
from .protocol import TrialRequest, by_value

logger = logging.getLogger(__name__)

_INSTALL_HINT = "DaskExecutor needs dask's distributed package: pip install 'asynctune[dask]'"
_HEALTH_CHECK_S = 1.0  # how often a waiting trial checks that the scheduler is still there
_POLL_S = 1.0  # how often a trial waiting for a decision checks that its task is still wanted
_DRAIN_WAIT_S = 0.2  # after a loss, how long a result already on its way may take to arrive
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
    process per CPU, listening on 127.0.0.1 only, dashboard off. With an address, a Client or a
    Cluster (dask-jobqueue's SLURMCluster, dask-kubernetes' KubeCluster, ...), an existing
    cluster; its workers must be able to import asynctune and your trainable, and see
    `storage_path` (a shared file system) so a trial can resume on another worker.

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
        start_timeout_s: How long start() waits for the scheduler and the workers.
        kill_grace_s: How long a killed trial may take to stop before it is interrupted, then
            (on the LocalCluster this executor owns) before its worker is restarted.
    """

    def __init__(self, address: Any = None, *, n_workers: int | None = None,
                 worker_resources: dict[str, float] | None = None, min_workers: int = 1,
                 start_timeout_s: float = 60.0, kill_grace_s: float = 3.0) -> None:
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
        if isinstance(min_workers, bool) or not isinstance(min_workers, int) or min_workers < 1:
            raise ValueError(f"DaskExecutor: min_workers must be an integer >= 1, got {min_workers=}")
        if not start_timeout_s > 0:
            raise ValueError(f"DaskExecutor: start_timeout_s must be > 0, got {start_timeout_s=}")
        if not kill_grace_s >= 0:
            raise ValueError(f"DaskExecutor: kill_grace_s must be >= 0, got {kill_grace_s=}")
        self.address = address
        self.n_workers = n_workers
        self.worker_resources = dict(worker_resources) if worker_resources else None
        self.min_workers = min_workers
        self.start_timeout_s = start_timeout_s
        self.kill_grace_s = kill_grace_s
        self.client: Any = None  # our distributed.Client (asynchronous), after start()
        self.cluster: Any = None  # the LocalCluster we started, if we started one
        self._workers: dict[str, dict[str, Any]] = {}  # live worker address -> the scheduler's info on it
        self._address_of: dict[str, str] = {}  # host (the worker's name) -> its live address
        self._on_hosts_changed: Any = None
        self._inventories: list[HostInventory] | None = None  # the workers at start()
        self._removed: set[str] = set()
        self._runs: set[_DaskTrialRun] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scheduler_lost = False
        self._closed = False

    # Executor ------------------------------------------------------------------------------------

    async def start(self) -> None:
        distributed = _import_distributed()
        address, security = await self._scheduler_address(distributed)
        try:
            self.client = await distributed.Client(address, asynchronous=True, security=security,
                                                   timeout=self.start_timeout_s, set_as_default=False)
            self.client.subscribe_topic("all", self._on_cluster_event)
            await self.client.wait_for_workers(self.min_workers, timeout=self.start_timeout_s)
            identity = await self.client.scheduler.identity()
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
        distributed = _import_distributed()
        key = f"asynctune-{request.trial_id}-{uuid.uuid4().hex[:12]}"
        try:
            outbox, inbox = await asyncio.gather(distributed.Queue(f"{key}-out", client=self.client),
                                                 distributed.Queue(f"{key}-in", client=self.client))
        except OSError as exc:  # CommClosedError is an OSError
            raise ExecutorLost(self._scheduler_lost_reason(exc)) from exc
        # The placement names a worker; should it go before the task starts, Dask may pick
        # another one that has the resources (allow_other_workers) rather than wait for it.
        address = self._address_of.get(placement.host)
        where = {"workers": [address], "allow_other_workers": True} if address else {}
        # Pickled here, so Dask ships the request as it is instead of walking it as a task graph
        # (which would turn its lists into tuples).
        blob = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        future = self.client.submit(_run_on_worker, blob, outbox.name, inbox.name, key=key, pure=False,
                                    retries=0, resources=self._dask_resources(placement) or None, **where)
        run = _DaskTrialRun(self, request, future, outbox, inbox)
        run.host = placement.host
        self._runs.add(run)
        return run

    async def close(self) -> None:
        self._closed = True
        for run in list(self._runs):
            run._lose("the executor was closed")
            run._outcome.cancel()
        if self._tasks:  # decisions and cancellations in flight; they must not outlive the client
            await asyncio.wait(self._tasks, timeout=5)
            for task in self._tasks:
                task.cancel()
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        try:
            if client is not None:
                client.unsubscribe_topic("all")
                await asyncio.wait_for(client.close(), 10)
        except Exception as exc:  # closing a client whose scheduler is gone may fail; the cluster must still go
            logger.debug("closing the Dask client: %s", exc)
        finally:
            if cluster is not None:
                await asyncio.wait_for(cluster.close(), 30)

    # Cluster -------------------------------------------------------------------------------------

    async def _scheduler_address(self, distributed: Any) -> tuple[str, Any]:
        if self.address is None:
            self.cluster = await self._start_local_cluster(distributed)
            return self.cluster.scheduler_address, self.cluster.security
        if isinstance(self.address, str):
            return self.address, None
        if isinstance(self.address, distributed.Client):
            return self.address.scheduler.address, self.address.security
        return self.address.scheduler_address, getattr(self.address, "security", None)

    async def _start_local_cluster(self, distributed: Any) -> Any:
        import dask

        n_workers = self.n_workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                       else os.cpu_count() or 1)
        # No silent reruns of a trial whose worker died: the controller retries it, from its
        # checkpoint, and counts the failure.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            try:
                return await distributed.LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, resources=self.worker_resources, asynchronous=True,
                    silence_logs=logging.ERROR,
                )
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
            self._removed.add(address)
            info = self._workers.pop(address, None)
            if info is not None and self._address_of.get(_host_name(address, info)) == address:
                del self._address_of[_host_name(address, info)]
            for run in list(self._runs):
                if run.worker_address == address:
                    run._lose(f"the Dask worker {address} was lost")
            self._hosts_changed()
        elif action == "add-worker" and address:
            self._removed.discard(address)
            self._spawn(self._refresh_workers(), "dask-refresh-workers")

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

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """A background task owned by this executor: close() ends whatever is left of it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget(self, run: _DaskTrialRun) -> None:
        self._runs.discard(run)

    def _scheduler_lost_reason(self, exc: BaseException) -> str:
        self._scheduler_lost = True
        return f"{_SCHEDULER_LOST} ({type(exc).__name__}: {exc})"


def _is_client_or_cluster(obj: Any) -> bool:
    return hasattr(obj, "scheduler_address") or (hasattr(obj, "scheduler") and hasattr(obj, "submit"))


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


def _pack(message: Any) -> bytes:
    """Messages travel as pickles inside Dask's comms: its msgpack would turn lists into tuples."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(data: bytes) -> Any:
    return pickle.loads(data)


def _decision_message(decision: Decision | Mutate) -> Any:
    if isinstance(decision, Mutate):
        return ("MUTATE", by_value(decision.config), decision.checkpoint)
    return decision.value


class _DaskTrialRun(TrialRun):
    """One attempt of a trial as one Dask task, read through its result queue."""

    def __init__(self, executor: DaskExecutor, request: TrialRequest, future: Any, outbox: Any, inbox: Any) -> None:
        self.executor = executor
        self.request = request
        self.trial_id = request.trial_id
        self.future = future
        self.outbox, self.inbox = outbox, inbox
        self.worker_address: str | None = None
        self.thread_id: int | None = None
        self._nonce: str | None = None
        self._lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._outcome = executor._spawn(self._watch_future(), f"dask-future-{request.trial_id}")
        self._sending: asyncio.Task[None] | None = None
        self._ended = False

    # TrialRun ------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[TrialEvent]:
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(self.outbox.get())
                waits: set[asyncio.Future[Any]] = {getter, self._lost}
                if not self._outcome.done():
                    waits.add(self._outcome)
                done, _ = await asyncio.wait(waits, timeout=_HEALTH_CHECK_S, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    message, getter = self._message_of(getter), None
                    if message is None:
                        continue
                    event = await self._handle(message)
                    if event is not None:
                        yield event
                        if not isinstance(event, ResultEvent):
                            return
                    continue
                if self._outcome.done() and self._outcome.result() is not None:
                    self._lose(self._outcome.result())
                if self._lost.done():
                    # Results the trial sent before it was lost are still worth keeping.
                    for message in await self._drain(getter):
                        event = await self._handle(message)
                        if event is not None:
                            yield event
                            if not isinstance(event, ResultEvent):
                                return
                    getter = None
                    if self.executor._scheduler_lost:
                        raise ExecutorLost(self._lost.result())
                    yield WorkerLostEvent(self._lost.result(), None, "")
                    return
                if not done:
                    self._check_health()
        finally:
            self._ended = True
            if getter is not None:
                getter.cancel()
            self._finish()

    def decide(self, decision: Decision | Mutate) -> None:
        self._send(_decision_message(decision))

    async def kill(self) -> None:
        """Stop at the trial's next report; then interrupt its thread; then (on our own
        LocalCluster) restart its worker. Whatever the worker does, events() ends."""
        if self._ended or self._lost.done():
            return
        self._send("STOP")  # read at once if the trial waits for a decision, else at its next report
        grace = self.executor.kill_grace_s
        if not await self._stopped_within(grace / 2):
            await self._interrupt()
            if not await self._stopped_within(grace / 2):
                await self._restart_worker()
        self._lose("the trial was killed")

    # Messages ------------------------------------------------------------------------------------

    def _message_of(self, getter: asyncio.Future[Any]) -> Any:
        try:
            return _unpack(getter.result())
        except Exception as exc:  # the scheduler went away under the get
            self._lose(self.executor._scheduler_lost_reason(exc))
            return None

    async def _handle(self, message: Any) -> TrialEvent | None:
        kind = message[0]
        if kind == "started":
            self._on_started(message[1])
            return None
        if kind == "result":
            return ResultEvent(message[1], message[2])
        if kind == "done":
            return DoneEvent(message[1], message[2])
        if kind == "error":
            return ErrorEvent(message[1], message[2])
        logger.warning("trial %s: unexpected message from its Dask task: %r", self.trial_id, message)
        return None

    def _on_started(self, info: dict[str, Any]) -> None:
        if self._nonce is None and not self._lost.done():
            self._nonce = info["nonce"]
            self.worker_address = info["worker"]
            self.host, self.pid, self.thread_id = info["worker"], info["pid"], info["thread"]
            if self.worker_address in self.executor._removed:
                self._lose(f"the Dask worker {self.worker_address} was lost")
                return
            self._send(("RUN", self._nonce))
            return
        # Dask ran the task again (its first worker died): that run must not train; the
        # controller retries the trial itself, from its checkpoint.
        self._send(("ABANDON", info["nonce"]))
        self._lose(f"the Dask worker {self.worker_address} was lost (Dask started the trial again elsewhere)")

    def _send(self, message: Any) -> None:
        previous = self._sending

        async def put() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await self.inbox.put(_pack(message))
            except Exception as exc:
                self._lose(self.executor._scheduler_lost_reason(exc))

        self._sending = self.executor._spawn(put(), f"dask-decide-{self.trial_id}")

    async def _drain(self, getter: asyncio.Future[Any] | None) -> list[Any]:
        messages = []
        if getter is not None:
            done, _ = await asyncio.wait({getter}, timeout=_DRAIN_WAIT_S)
            if done and getter.exception() is None:
                messages.append(getter.result())
            else:
                getter.cancel()
        if self.executor.client is not None and not self.executor._scheduler_lost:
            try:
                messages += await asyncio.wait_for(self.outbox.get(batch=True), _HEALTH_CHECK_S)
            except Exception:  # the scheduler may be gone too: then there is nothing to drain
                pass
        return [_unpack(message) for message in messages]

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
                return f"the Dask worker died under the trial ({exc})"
            return f"the Dask task failed: {name}: {exc}"
        return None

    def _lose(self, reason: str) -> None:
        if not self._lost.done():
            self._lost.set_result(reason)

    def _check_health(self) -> None:
        client = self.executor.client
        if client is None or client.status != "running":
            self.executor._scheduler_lost = True
            self._lose(_SCHEDULER_LOST)
        elif self.worker_address is not None and self.worker_address in self.executor._removed:
            self._lose(f"the Dask worker {self.worker_address} was lost")

    async def _stopped_within(self, seconds: float) -> bool:
        """Whether the task ended (or the attempt is already lost) within `seconds`."""
        done, _ = await asyncio.wait({self._outcome, self._lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)

    async def _interrupt(self) -> None:
        client = self.executor.client
        if client is None or self.worker_address is None or self.thread_id is None:
            return
        try:
            await asyncio.wait_for(client.run(_interrupt_thread, self.thread_id, workers=[self.worker_address]),
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
        """Let go of the task and the queues; nothing of this attempt is read any more."""
        self.executor._forget(self)
        if not self._outcome.done():
            self._outcome.cancel()
        client = self.executor.client
        if client is None or client.status != "running":
            return
        if not self.future.done():
            # Still running (lost, killed): release it, so Dask does not run it again.
            self.executor._spawn(_quietly(client.cancel([self.future])), f"dask-cancel-{self.trial_id}")
        for queue in (self.outbox, self.inbox):
            try:
                queue.close()
            except Exception:
                pass


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        logger.debug("Dask cleanup: %s", exc)


# --- the worker's side: runs inside a Dask worker process ---------------------------------------

_TRAINABLES: dict[str, Any] = {}
_INSTALL_LOCK = threading.Lock()


def _run_on_worker(request_blob: bytes, outbox_name: str, inbox_name: str) -> str:
    """The Dask task: introduce this run, wait for the go, run the trial, send how it ended."""
    from distributed import Queue, get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    outbox, inbox = Queue(outbox_name), Queue(inbox_name)
    channel = _QueueChannel(outbox, inbox, worker, thread_state.key)
    nonce = uuid.uuid4().hex
    channel.send(("started", {"nonce": nonce, "worker": worker.address, "pid": os.getpid(),
                              "hostname": socket.gethostname(), "thread": threading.get_ident()}))
    try:
        go = channel.receive()
    except session_module.StopTrial:
        return "abandoned"
    if go != ("RUN", nonce):
        return "abandoned"
    message = _execute(channel, pickle.loads(request_blob))
    channel.send(message)
    for queue in (outbox, inbox):
        queue.close()
    return message[0]


class _QueueChannel:
    """The trial's channel (send/receive, as TrialSession uses it) over two Dask queues."""

    def __init__(self, outbox: Any, inbox: Any, worker: Any, key: Any) -> None:
        self.outbox, self.inbox, self.worker, self.key = outbox, inbox, worker, key

    def send(self, message: Any) -> None:
        self.outbox.put(_pack(message))

    def receive(self) -> Any:
        while True:
            try:
                return _unpack(self.inbox.get(timeout=_POLL_S))
            except (TimeoutError, asyncio.TimeoutError):
                if not self._still_wanted():
                    raise session_module.StopTrial() from None

    def _still_wanted(self) -> bool:
        """False once Dask cancelled this task (the driver let go of it, or went away)."""
        state = self.worker.state.tasks.get(self.key)
        return state is not None and state.state in ("executing", "long-running")


def _execute(channel: _QueueChannel, request: TrialRequest) -> tuple:
    """Run one trial in this thread; the message that says how it ended."""
    from .worker import execute_trial

    _install_thread_routing()
    os.makedirs(request.trial_dir, exist_ok=True)
    session = session_module.TrialSession(channel, request)
    with _trial_output(request.trial_dir):
        _SESSIONS.bind(session)
        try:
            return execute_trial(session, request, _TRAINABLES)
        finally:
            _SESSIONS.unbind()


def _interrupt_thread(thread_id: int) -> int:
    """Raise StopTrial in the trial's thread at its next bytecode (runs on the Dask worker)."""
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                      ctypes.py_object(session_module.StopTrial))


class _ThreadSessions:
    """Stands in for `session._current` in a Dask worker, where several trials may run at
    once in threads of one process: each thread sees its own trial's session."""

    def __init__(self) -> None:
        self._local = threading.local()

    def bind(self, session: session_module.TrialSession) -> None:
        self._local.session = session

    def unbind(self) -> None:
        self._local.session = None

    def __getattr__(self, name: str) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            raise AsynctuneError("asynctune functions can only be called inside a trial started by asynctune.run()")
        return getattr(session, name)


class _ThreadRoutedStream:
    """sys.stdout / sys.stderr of a Dask worker: a trial's thread writes to its own file, every
    other thread to the worker's stream (the worker's fds are never redirected)."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.targets: dict[int, Any] = {}

    def _target(self) -> Any:
        return self.targets.get(threading.get_ident(), self.original)

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


_SESSIONS = _ThreadSessions()


def _install_thread_routing() -> None:
    with _INSTALL_LOCK:
        if session_module._current is not _SESSIONS:
            session_module._current = _SESSIONS  # type: ignore[assignment]
        if not isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = _ThreadRoutedStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadRoutedStream):
            sys.stderr = _ThreadRoutedStream(sys.stderr)


class _trial_output:
    """Route this thread's prints to the trial's stdout.txt / stderr.txt."""

    def __init__(self, trial_dir: str) -> None:
        self.trial_dir = trial_dir
        self.files: list[Any] = []

    def __enter__(self) -> None:
        ident = threading.get_ident()
        for stream, name in ((sys.stdout, "stdout.txt"), (sys.stderr, "stderr.txt")):
            handle = open(os.path.join(self.trial_dir, name), "a", buffering=1)
            self.files.append(handle)
            stream.targets[ident] = handle

    def __exit__(self, *exc_info: Any) -> None:
        ident = threading.get_ident()
        for stream in (sys.stdout, sys.stderr):
            stream.targets.pop(ident, None)
        for handle in self.files:
            handle.close()
