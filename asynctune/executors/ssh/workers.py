"""The worker pool of an SSH host: worker processes behind SSH session channels, and the
trials they run, whose events pass through one ordered pipeline each."""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import signal
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import asyncssh

from ...core.compat import TimeoutErrors, timeout
from ...errors import ExecutorError, HostUnreachable
from ...core.resources import Placement
from ...core.trial import Decision, Mutate
from ..base import DoneEvent, ErrorEvent, EventQueue, ResultEvent, TrialEvent, TrialRun, WorkerLostEvent
from ..local import describe_exit, detach_ended_run, stderr_tail
from ...worker.protocol import EXIT_FRAME, TrialRequest, WorkerMessages, encode_decision, run_frame
from .sync import _inside, _relative

if TYPE_CHECKING:
    from .host import _RemoteHost

logger = logging.getLogger(__name__)

_STDERR_TAIL_BYTES = 4096


class _WorkerPool:
    """The worker side of a `_RemoteHost` (host.py): starts, reuses and ends its workers."""

    # Set by _RemoteHost: name, spec, info, up, down_reason, inventory, connections, code_dir,
    # workers, idle, executor; and its methods env(), command(), _open_connection(),
    # _map_request() (sync.py).
    name: str
    spec: Any
    info: dict[str, Any]
    up: bool
    down_reason: str
    inventory: Any
    connections: dict[Any, int]
    code_dir: str | None
    workers: set[_Worker]
    idle: dict[tuple, deque[_Worker]]
    executor: Any

    async def launch(self, request: TrialRequest, placement: Placement) -> _SSHTrialRun:
        env = dict(placement.env())
        if "OMP_NUM_THREADS" not in self.spec.env:
            env["OMP_NUM_THREADS"] = str(max(1, int(placement.cpu)))
        key = tuple(sorted(env.items()))
        remote_request = await self._map_request(request)
        idle = self.idle.get(key)  # forget() takes dead workers out, so these are alive
        worker = idle.popleft() if idle else await self._spawn(env, key)
        if request.trainable_key in worker.trainables:
            remote_request = replace(remote_request, trainable_blob=None)
        else:
            worker.trainables.add(request.trainable_key)
        run = _SSHTrialRun(worker, request, remote_request)
        worker.run = run
        worker.send(run_frame(remote_request))
        return run

    async def _spawn(self, env_delta: dict[str, str], key: tuple) -> _Worker:
        connection = await self._channel_connection()
        env = self.env({**env_delta, "PYTHONUNBUFFERED": "1"})
        cwd = self.code_dir or self.info["workdir"]
        command = self.command([self.spec.python, "-m", "asynctune.worker"], env, cwd)
        if connection not in self.connections:
            raise HostUnreachable(self.name, self.down_reason)
        self.connections[connection] += 1
        try:
            _, worker = await connection.create_session(lambda: _Worker(self, connection, key), command,
                                                        encoding=None)
        except BaseException:
            if connection in self.connections:
                self.connections[connection] -= 1
            raise
        self.workers.add(worker)
        try:
            async with timeout(60):
                worker.pid = (await worker.ready).get("pid")
        except BaseException as exc:
            await self.kill_workers([worker])
            if isinstance(exc, TimeoutErrors):
                raise ExecutorError(f"host {self.name}: the worker did not start within 60 s") from None
            raise
        return worker

    async def _channel_connection(self) -> Any:
        limit = self.executor.sessions_per_connection
        for connection, used in self.connections.items():
            if used < limit:
                return connection
        connection = await self._open_connection()
        self.connections[connection] = 0
        return connection

    def reclaim(self, worker: _Worker) -> None:
        if self.executor.reuse_workers and not self.executor._closed and worker.alive and self.up:
            self.idle.setdefault(worker.key, deque()).append(worker)
            limit = max(2, int(self.inventory.cpus) if self.inventory else 2)
            idle = [w for queue in self.idle.values() for w in queue]
            for extra in idle[: max(0, len(idle) - limit)]:
                self.idle[extra.key].remove(extra)
                extra.exit()
        else:
            worker.exit()

    def forget(self, worker: _Worker) -> None:
        self.workers.discard(worker)
        queue = self.idle.get(worker.key)
        if queue and worker in queue:
            queue.remove(worker)
        if worker.connection in self.connections:
            self.connections[worker.connection] = max(0, self.connections[worker.connection] - 1)

    async def kill_workers(self, workers: Sequence[_Worker]) -> None:
        """SIGTERM each worker's process group, wait the grace period, then SIGKILL and close."""
        alive = [w for w in workers if w.alive]
        if not alive:
            return
        await self._signal(alive, "TERM")
        await _wait_gone(alive, self.executor.kill_grace_s)
        alive = [w for w in alive if w.alive]
        if alive:
            await self._signal(alive, "KILL")
            for worker in alive:
                worker.close_channel()  # the worker's watchdog SIGKILLs its group as the pipe closes
            await _wait_gone(alive, 5.0)

    async def _signal(self, workers: Sequence[_Worker], name: str) -> None:
        pids = [w.pid for w in workers if isinstance(w.pid, int) and w.pid > 1]
        if not pids or not self.connections or not self.up:
            return
        connection = min(self.connections, key=self.connections.__getitem__)  # the one with most room
        targets = " ".join(f"-{pid} {pid}" for pid in pids)  # each worker leads its own process group
        try:
            async with timeout(10):
                await connection.run(f"kill -{name} -- {targets} 2>/dev/null; true")
        except Exception as exc:
            logger.debug("kill -%s on %s failed: %s", name, self.name, exc)


class _Worker(asyncssh.SSHClientSession):
    """One worker process on a host, behind one SSH session channel."""

    def __init__(self, remote: _RemoteHost, connection: Any, key: tuple) -> None:
        loop = asyncio.get_running_loop()
        self.remote = remote
        self.connection = connection
        self.key = key
        self.messages = WorkerMessages(f"worker on {remote.name}", self._on_result, self._on_end)
        self.ready: asyncio.Future[dict[str, Any]] = self.messages.ready
        self.gone: asyncio.Future[None] = loop.create_future()
        self.channel: Any = None
        self.stderr = bytearray()
        self.run: _SSHTrialRun | None = None
        self.trainables: set[str] = set()
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.alive = True
        self._lost_reason: HostUnreachable | None = None

    # asyncssh.SSHClientSession ------------------------------------------------------------------

    def connection_made(self, channel: Any) -> None:
        self.channel = channel

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if datatype is not None:  # EXTENDED_DATA_STDERR: the worker's own stderr
            self.stderr += data
            del self.stderr[:-_STDERR_TAIL_BYTES]
            return
        self.messages.feed(data)

    def exit_status_received(self, status: int) -> None:
        self.exit_code = status

    def exit_signal_received(self, name: str, core_dumped: bool, message: str, lang: str) -> None:
        number = getattr(signal.Signals, f"SIG{name}", None)
        self.exit_code = -int(number) if number is not None else -1

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._lost_reason is None:
            self._lost_reason = HostUnreachable(self.remote.name, f"connection lost: {exc}")
        self._end()
        if exc is not None:
            self.remote._connection_lost(self.connection, exc)

    # State -----------------------------------------------------------------------------------------

    def lose(self, reason: HostUnreachable) -> None:
        """The host went down: this worker is gone with it."""
        if self._lost_reason is None:
            self._lost_reason = reason
        self._end()

    def _end(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self.remote.forget(self)
        stderr = self.stderr.decode(errors="replace")
        if not self.ready.done():
            why = str(self._lost_reason) if self._lost_reason else describe_exit(self.exit_code)
            self.ready.set_exception(ExecutorError(f"worker on {self.remote.name} failed to start: {why}\n{stderr}"))
        run, self.run = self.run, None
        if run is not None:
            run.worker_lost(self._lost_reason, self.exit_code)
        if not self.gone.done():
            self.gone.set_result(None)

    def _on_result(self, event: ResultEvent) -> None:
        if self.run is not None:
            self.run.on_result(event)

    def _on_end(self, event: DoneEvent | ErrorEvent) -> None:
        run = detach_ended_run(self, event)
        if run is not None:
            self.remote.reclaim(self)  # idle again before the controller even sees the event
            run.on_end(event)

    def send(self, data: bytes) -> None:
        channel = self.channel
        if self.alive and channel is not None and not channel.is_closing():
            channel.write(data)

    def exit(self) -> None:
        self.send(EXIT_FRAME)

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()


class _SSHTrialRun(TrialRun):
    """A trial on a host. Its events pass through one ordered pipeline: a result that carries a
    checkpoint waits for its copy to the driver, and everything after it waits in turn."""

    def __init__(self, worker: _Worker, request: TrialRequest, remote_request: TrialRequest) -> None:
        self.worker = worker
        self.remote = worker.remote
        self.request = request
        self.remote_request = remote_request
        self.trial_id = request.trial_id
        self.pid = worker.pid
        self.host = worker.remote.name
        self.queue = EventQueue()
        self._tail: asyncio.Task[Any] | None = None
        self._copied: dict[str, str] = {}  # remote checkpoint -> driver copy
        self._latest = remote_request.restore_checkpoint  # the host's newest checkpoint of this trial
        self._decision: asyncio.Task[Any] | None = None

    async def events(self) -> AsyncIterator[TrialEvent]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                if not isinstance(event, ResultEvent):
                    return
        finally:
            for task in (self._tail, self._decision):
                if task is not None and not task.done():
                    task.cancel()

    def decide(self, decision: Decision | Mutate) -> None:
        if not self.worker.messages.answering():
            return
        if isinstance(decision, Mutate) and decision.checkpoint is not None:
            self._decision = self.remote.executor._tasks.spawn(self._send_mutation(decision),
                                                               f"ssh-mutate-{self.trial_id}")
        else:
            self.worker.send(encode_decision(decision))

    async def kill(self) -> None:
        await self.remote.kill_workers([self.worker])

    # From the worker -----------------------------------------------------------------------------

    def on_result(self, event: ResultEvent) -> None:
        if event.checkpoint is None and self._tail is None:  # the hot path: straight to the controller
            self.queue.put(event)
            return

        async def copy() -> TrialEvent:
            return ResultEvent(event.result, await self._copy_checkpoint(event.checkpoint))

        self._then(copy)

    def on_end(self, event: DoneEvent | ErrorEvent) -> None:
        async def finish() -> TrialEvent:
            end: TrialEvent = event
            if isinstance(event, DoneEvent):  # the driver's copy of its last checkpoint
                end = DoneEvent(event.how, await self._copy_checkpoint(event.checkpoint))
            await self._fetch_logs()
            return end

        self._then(finish)

    def worker_lost(self, reason: HostUnreachable | None, exit_code: int | None) -> None:
        worker_stderr = bytes(self.worker.stderr)

        async def lost() -> TrialEvent:
            if reason is None:  # the worker died, the host is fine: its stderr tells why
                await self._fetch_logs()
                return WorkerLostEvent(describe_exit(exit_code), exit_code,
                                       stderr_tail(self.request.trial_dir, worker_stderr))
            return WorkerLostEvent(str(reason), None, stderr_tail(self.request.trial_dir, worker_stderr))

        self._then(lost)

    # The pipeline ----------------------------------------------------------------------------------

    def _then(self, work: Callable[[], Awaitable[TrialEvent]]) -> None:
        previous = self._tail

        async def step() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                event = await work()
            except Exception as exc:  # a fault of ours must still end the trial's events
                logger.error("SSHExecutor: event pipeline of %s failed", self.trial_id, exc_info=True)
                event = WorkerLostEvent(f"asynctune internal error on {self.host}: {exc!r}")
            self.queue.put(event)

        task = self.remote.executor._tasks.spawn(step(), f"ssh-{self.trial_id}")
        self._tail = task
        if task is not None:
            task.add_done_callback(self._step_done)

    def _step_done(self, task: asyncio.Task[Any]) -> None:
        if self._tail is task:
            self._tail = None

    async def _copy_checkpoint(self, remote: str | None) -> str | None:
        """The driver's copy of a checkpoint the trial reported (None if it could not be copied)."""
        if remote is None:
            return None
        local = self._copied.get(remote)
        if local is not None:
            return local
        local = os.path.join(self.request.trial_dir, _relative(remote, self.remote_request.trial_dir, posixpath))
        try:
            await self.remote.download_dir(remote, local)
        except Exception as exc:
            logger.warning("SSHExecutor: could not copy checkpoint %s of %s from %s: %s", remote, self.trial_id,
                           self.host, exc)
            return None
        self._copied[remote] = local
        previous, self._latest = self._latest, remote
        if previous is not None and previous != remote and _inside(previous, self.remote_request.trial_dir):
            self.remote.discard(previous)  # the driver has it: the host keeps only the latest
        return local

    async def _fetch_logs(self) -> None:
        if not self.remote.up or self.remote.sftp is None:
            return
        try:
            async with timeout(30):
                await self.remote.fetch_logs(self.remote_request.trial_dir, self.request.trial_dir, self.trial_id)
        except Exception as exc:
            logger.warning("SSHExecutor: could not copy the logs of %s from %s: %s", self.trial_id, self.host, exc)

    async def _send_mutation(self, mutate: Mutate) -> None:
        try:
            checkpoint = await self.remote.upload_checkpoint(
                mutate.checkpoint, self.request.trial_dir, self.remote_request.trial_dir,
                self.request.experiment_dir or os.path.dirname(self.request.trial_dir))
        except Exception as exc:
            logger.warning("SSHExecutor: could not upload %s to %s for %s: %s; stopping it", mutate.checkpoint,
                           self.host, self.trial_id, exc)
            self.worker.send(encode_decision(Decision.STOP))
            return
        self.worker.send(encode_decision(Mutate(mutate.config, checkpoint)))


async def _wait_gone(workers: Sequence[_Worker], seconds: float) -> None:
    pending = [w.gone for w in workers if not w.gone.done()]
    if pending:
        await asyncio.wait(pending, timeout=seconds)

