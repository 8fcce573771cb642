"""The worker pool of an SSH host: worker processes behind SSH session channels, and the
trials they run, whose events pass through one ordered pipeline each."""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncssh

from ...core.compat import TimeoutErrors, timeout
from ...errors import ExecutorError, HostUnreachable
from ...core.resources import Placement
from ...core.trial import Decision, Mutate
from ...worker.protocol import (
    DoneEvent, ErrorEvent, ResultEvent, TrialEvent, TrialRequest, WorkerLostEvent, encode_decision,
)
from ..pipe_worker import PipeWorker, QueuedTrialRun, WorkerPool, describe_exit, stderr_tail
from .sync import _inside, _relative

if TYPE_CHECKING:
    from .host import _RemoteHost

logger = logging.getLogger(__name__)

class HostWorkers:
    """The worker side of a `_RemoteHost` (host.py): starts, reuses and ends its workers."""

    def __init__(self, host: _RemoteHost) -> None:
        self.host = host
        executor = host.executor
        self.pool: WorkerPool[_Worker] = WorkerPool(
            reusable=lambda worker: executor.reuse_workers and not executor._closed and host.up,
            idle_limit=lambda: max(2, int(host.inventory.cpus) if host.inventory else 2))
        self.lost: dict[int, float] = {}  # workers of connections given up, pid -> start time: ended once back

    @property
    def workers(self) -> set[_Worker]:
        return self.pool.workers

    async def launch(self, request: TrialRequest, placement: Placement) -> _SSHTrialRun:
        host = self.host
        env = dict(placement.env())
        if "OMP_NUM_THREADS" not in host.spec.env:
            env["OMP_NUM_THREADS"] = str(max(1, int(placement.cpu)))
        key = tuple(sorted(env.items()))
        remote_request = await host.files.map_request(request)
        worker = self.pool.take_idle(key) or await self._spawn(env, key)
        run = _SSHTrialRun(worker, request, remote_request)
        worker.start(run, remote_request)
        return run

    async def _spawn(self, env_delta: dict[str, str], key: tuple) -> _Worker:
        host = self.host
        connection = await self._channel_connection()
        env = host.env({**env_delta, "PYTHONUNBUFFERED": "1"})
        cwd = host.files.code_dir or host.info["workdir"]
        command = host.command([host.spec.python, "-m", "asynctune.worker"], env, cwd)
        if connection not in host.connections:
            raise HostUnreachable(host.name, host.down_reason)
        host.connections[connection] += 1
        try:
            _, worker = await connection.create_session(lambda: _Worker(self, connection, key), command,
                                                        encoding=None)
        except BaseException:
            if connection in host.connections:
                host.connections[connection] -= 1
            raise
        self.pool.add(worker)
        try:
            async with timeout(60):
                hello = await worker.ready
                worker.pid, worker.started = hello.get("pid"), hello.get("started")
        except BaseException as exc:
            await self.kill([worker])
            if isinstance(exc, TimeoutErrors):
                raise ExecutorError(f"host {host.name}: the worker did not start within 60 s") from None
            raise
        return worker

    async def _channel_connection(self) -> Any:
        host = self.host
        limit = host.executor.sessions_per_connection
        for connection, used in host.connections.items():
            if used < limit:
                return connection
        connection = await host._open_connection()
        host.connections[connection] = 0
        return connection

    def forget(self, worker: _Worker) -> None:
        self.pool.forget(worker)
        connections = self.host.connections
        if worker.connection in connections:
            connections[worker.connection] = max(0, connections[worker.connection] - 1)

    def lose_all(self, reason: HostUnreachable) -> None:
        """The host went down: every worker is gone with it (or, where only the connection
        stalled, runs on until `end_lost` reaches it over the next one)."""
        for worker in list(self.pool.workers):
            if isinstance(worker.pid, int) and worker.pid > 1 and worker.exit_code is None \
                    and isinstance(worker.started, float):
                self.lost[worker.pid] = worker.started
            worker.lose(reason)
        self.pool.clear_idle()

    async def end_lost(self, connection: Any) -> None:
        """SIGKILL the workers of a connection given up that still run, with their descendants.

        A connection whose sshd stalled (stopped, swapping) never closes the workers' pipes, so
        neither they nor their watchdogs see the driver go: they would train on, holding the
        host's CPUs and GPUs, until that sshd runs again. Only processes whose command line is
        the process each was are ended: the pid and its start time must both match (after a
        reboot or a wrap the pid may be another experiment's worker's)."""
        lost, self.lost = self.lost, {}
        if not lost:
            return
        pids = sorted(lost)
        host = self.host
        command = host.command([host.spec.python, "-c", _END_LOST_WORKERS, *(f"{pid}:{lost[pid]!r}" for pid in pids)],
                               host.env(), None)
        try:
            async with timeout(15):
                result = await connection.run(command)
            if result.stdout and result.stdout.strip():
                logger.warning("SSHExecutor: host %s: ended the workers its stalled connection left running "
                               "(pids %s)", host.name, result.stdout.strip())
        except Exception as exc:
            logger.warning("SSHExecutor: host %s: could not end the workers its stalled connection left running "
                           "(pids %s): %s", host.name, " ".join(map(str, pids)), exc)

    async def kill(self, workers: Sequence[_Worker]) -> None:
        """SIGTERM each worker's process group, wait the grace period, then SIGKILL and close."""
        alive = [w for w in workers if w.alive]
        if not alive:
            return
        await self._signal(alive, "TERM")
        await _wait_gone(alive, self.host.executor.kill_grace_s)
        alive = [w for w in alive if w.alive]
        if alive:
            await self._signal(alive, "KILL")
            for worker in alive:
                worker.close_channel()  # the worker's watchdog SIGKILLs its group as the pipe closes
            await _wait_gone(alive, 5.0)

    async def close(self) -> None:
        """Idle workers exit, busy ones are killed; all within a few seconds."""
        workers = list(self.pool.workers)
        busy = [w for w in workers if w.run is not None]
        for worker in workers:
            if worker.run is None:
                worker.exit()
        await asyncio.gather(self.kill(busy), _wait_gone(workers, 2.0))
        await self.kill(list(self.pool.workers))

    async def _signal(self, workers: Sequence[_Worker], name: str) -> None:
        host = self.host
        pids = [w.pid for w in workers if isinstance(w.pid, int) and w.pid > 1]
        if not pids or not host.connections or not host.up:
            return
        connection = min(host.connections, key=host.connections.__getitem__)  # the one with most room
        targets = " ".join(f"-{pid} {pid}" for pid in pids)  # each worker leads its own process group
        try:
            async with timeout(10):
                await connection.run(f"kill -{name} -- {targets} 2>/dev/null; true")
        except Exception as exc:
            logger.debug("kill -%s on %s failed: %s", name, host.name, exc)


# Run on the host with PID:START_TIME of lost workers: SIGKILLs each that is still that process,
# its descendants first; prints the pids it ended.
_END_LOST_WORKERS = """
import sys, psutil
ended = []
for arg in sys.argv[1:]:
    pid, started = arg.split(":")
    try:
        worker = psutil.Process(int(pid))
        if abs(worker.create_time() - float(started)) > 0.01:
            continue
        for proc in [*worker.children(recursive=True), worker]:
            try:
                proc.kill()
            except psutil.Error:
                pass
        ended.append(str(pid))
    except psutil.Error:
        pass
print(" ".join(ended))
"""


class _Worker(PipeWorker, asyncssh.SSHClientSession):
    """One worker process on a host, behind one SSH session channel."""

    def __init__(self, workers: HostWorkers, connection: Any, key: tuple) -> None:
        super().__init__(workers.pool, key, f"worker on {workers.host.name}")
        self.workers = workers
        self.host = workers.host
        self.connection = connection
        self.channel: Any = None
        self.exit_code: int | None = None
        self.started: float | None = None  # the process's start time, from its hello: with the pid, its identity
        self._lost_reason: HostUnreachable | None = None

    # asyncssh.SSHClientSession ------------------------------------------------------------------

    def connection_made(self, channel: Any) -> None:
        self.channel = channel

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if datatype is not None:  # EXTENDED_DATA_STDERR: the worker's own stderr
            self.keep_stderr(data)
        else:
            self.messages.feed(data)

    def exit_status_received(self, status: int) -> None:
        self.exit_code = status

    def exit_signal_received(self, name: str, core_dumped: bool, message: str, lang: str) -> None:
        number = getattr(signal.Signals, f"SIG{name}", None)
        self.exit_code = -int(number) if number is not None else -1

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._lost_reason is None:
            self._lost_reason = HostUnreachable(self.host.name, f"connection lost: {exc}")
        self._end()
        if exc is not None:
            self.host._connection_lost(self.connection, exc)

    # State -----------------------------------------------------------------------------------------

    def lose(self, reason: HostUnreachable) -> None:
        """The host went down: this worker is gone with it."""
        if self._lost_reason is None:
            self._lost_reason = reason
        self._end()

    def _end(self) -> None:
        if not self.alive:
            return
        self.workers.forget(self)
        why = str(self._lost_reason) if self._lost_reason else describe_exit(self.exit_code)
        stderr = self.stderr.decode(errors="replace")
        run = self.ended(ExecutorError(f"worker on {self.host.name} failed to start: {why}\n{stderr}"))
        if run is not None:
            run.worker_lost(self._lost_reason, self.exit_code)

    def write(self, data: bytes) -> None:
        channel = self.channel
        if channel is not None and not channel.is_closing():
            channel.write(data)

    def abort(self) -> None:
        self.close_channel()  # the worker's watchdog SIGKILLs its group as its pipe closes

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()


class _SSHTrialRun(QueuedTrialRun):
    """A trial on a host. Its events pass through one ordered pipeline: a result that carries a
    checkpoint waits for its copy to the driver, and everything after it waits in turn."""

    worker: _Worker

    def __init__(self, worker: _Worker, request: TrialRequest, remote_request: TrialRequest) -> None:
        super().__init__(worker, request)
        self.remote = worker.host
        self.files = worker.host.files
        self.remote_request = remote_request
        self.host = worker.host.name
        self._tail: asyncio.Task[Any] | None = None
        self._copied: dict[str, str] = {}  # remote checkpoint -> driver copy
        self._latest = remote_request.restore_checkpoint  # the host's newest checkpoint of this trial
        self._decision: asyncio.Task[Any] | None = None
        self._last_arrival: float | None = None  # when its latest result reached the driver

    async def events(self) -> AsyncIterator[TrialEvent]:
        try:
            async for event in super().events():
                yield event
        finally:
            for task in (self._tail, self._decision):
                if task is not None and not task.done():
                    task.cancel()

    def send_decision(self, decision: Decision | Mutate) -> None:
        if isinstance(decision, Mutate) and decision.checkpoint is not None:  # the host needs its own copy
            self._decision = self.remote.executor._tasks.spawn(self._send_mutation(decision),
                                                               f"ssh-mutate-{self.trial_id}")
        else:
            super().send_decision(decision)

    async def _kill(self) -> None:
        await self.worker.workers.kill([self.worker])

    def void(self, event: ResultEvent) -> None:
        pass  # kept as before: its checkpoint is on the host, or on its way here

    # From the worker -----------------------------------------------------------------------------

    def on_result(self, event: ResultEvent) -> None:
        now = time.monotonic()  # as the driver sees it: the trial's steps and its link's round trips
        if self._last_arrival is not None:
            self.remote.executor._stragglers.observe(self.host, now - self._last_arrival)
        self._last_arrival = now
        if self.pipelined:
            if not self._counted(event):  # sent before the worker took a STOP, PAUSE or MUTATE: void
                return
            if self._tail is None:  # its checkpoint's copy (if any) follows in the background
                if event.checkpoint is not None:
                    event = ResultEvent(event.result, self._copy_in_background(event.checkpoint))
                self.queue.put(event)
                return
        elif event.checkpoint is None and self._tail is None:  # the hot path: straight to the controller
            self.queue.put(event)
            return

        async def copy() -> TrialEvent:
            return ResultEvent(event.result, await self._copy_checkpoint(event.checkpoint))

        self._then(copy)

    def on_end(self, event: DoneEvent | ErrorEvent) -> None:
        if isinstance(event, ErrorEvent) and event.info.get("unwritable"):
            # The host's disk, not the trial: placed there again, every retry would fail at once
            # and the host would turn every trial into an ERROR. Down, its probe keeps it out
            # until its workdir can be written; the retry goes to another host.
            self.remote.disk_failed(event.error)
        self._fetch_logs_in_background()  # the slot does not wait for the logs
        if self.pipelined and self._tail is None:
            if isinstance(event, DoneEvent) and event.checkpoint is not None:
                event = DoneEvent(event.how, self._copy_in_background(event.checkpoint), event.info)
            super().on_end(event)  # held until its results are decided
            return
        self._ended = True

        async def finish() -> TrialEvent:
            if isinstance(event, DoneEvent):  # the driver's copy of its last checkpoint
                return DoneEvent(event.how, await self._copy_checkpoint(event.checkpoint), event.info)
            return event

        self._then(finish)

    def worker_lost(self, reason: HostUnreachable | None, exit_code: int | None) -> None:
        worker_stderr = bytes(self.worker.stderr)

        async def lost() -> TrialEvent:
            if reason is None:  # the worker died, the host is fine: its stderr tells why
                await self._fetch_logs()
                return WorkerLostEvent(self.worker.exit_reason(exit_code), exit_code,
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
        local = self._local_path(remote)
        try:
            await self.remote.copies.submit(remote, local)  # one tar stream, not a round trip per file
        except Exception as exc:
            logger.warning("SSHExecutor: could not copy checkpoint %s of %s from %s: %s", remote, self.trial_id,
                           self.host, exc)
            return None
        self._copied[remote] = local
        previous, self._latest = self._latest, remote
        if previous is not None and previous != remote and _inside(previous, self.remote_request.trial_dir):
            self.files.discard(previous)  # the driver has it: the host keeps only the latest
        return local

    def _local_path(self, remote: str) -> str:
        return os.path.join(self.request.trial_dir, _relative(remote, self.remote_request.trial_dir, posixpath))

    def _copy_in_background(self, remote: str) -> str:
        """Start the copy of a checkpoint (copies.py) and return the driver path it will have."""
        local = self._copied.get(remote)
        if local is not None:
            return local
        local = self._copied[remote] = self._local_path(remote)
        copying = self.remote.copies.submit(remote, local)
        copying.add_done_callback(lambda done: self._copy_finished(remote, done))
        return local

    def _copy_finished(self, remote: str, done: asyncio.Future[str]) -> None:
        if done.cancelled() or done.exception() is not None:
            error = "cancelled" if done.cancelled() else done.exception()
            logger.warning("SSHExecutor: trial %s: checkpoint %s was not copied from host %s (%s); a restart "
                           "uses its newest complete copy", self.trial_id, remote, self.host, error)
            return
        previous, self._latest = self._latest, remote
        if previous is not None and previous != remote and _inside(previous, self.remote_request.trial_dir):
            self.files.discard(previous)  # the driver has a newer one: the host keeps only the latest

    def _fetch_logs_in_background(self) -> None:
        previous = self.remote.executor._log_fetches.get(self.trial_id)

        async def fetch() -> None:
            if previous is not None:  # this trial's earlier fetch first: the logs append in order
                await asyncio.gather(previous, return_exceptions=True)
            await self._fetch_logs()

        task = self.remote.executor._tasks.spawn(fetch(), f"ssh-logs-{self.trial_id}")
        if task is not None:
            fetches = self.remote.executor._log_fetches
            fetches[self.trial_id] = task
            task.add_done_callback(lambda t: fetches.pop(self.trial_id, None) if fetches.get(self.trial_id) is t
                                   else None)

    async def _fetch_logs(self) -> None:
        if not self.remote.up or self.remote.sftp is None:
            return
        try:
            async with timeout(30):
                await self.files.fetch_logs(self.remote_request.trial_dir, self.request.trial_dir, self.trial_id)
        except Exception as exc:
            logger.warning("SSHExecutor: could not copy the logs of %s from %s: %s", self.trial_id, self.host, exc)

    async def _send_mutation(self, mutate: Mutate) -> None:
        try:
            checkpoint = await self.files.upload_checkpoint(
                mutate.checkpoint, self.request.trial_dir, self.remote_request.trial_dir,
                self.request.experiment_dir or os.path.dirname(self.request.trial_dir))
        except Exception as exc:
            logger.warning("SSHExecutor: could not upload %s to %s for %s: %s; stopping it", mutate.checkpoint,
                           self.host, self.trial_id, exc)
            if not self._ended:
                self.worker.send(encode_decision(Decision.STOP))
            return
        if not self._ended:  # a pipelined trial that ended meanwhile: its worker may run another
            self.worker.send(encode_decision(Mutate(mutate.config, checkpoint)))


async def _wait_gone(workers: Sequence[_Worker], seconds: float) -> None:
    pending = [w.gone for w in workers if not w.gone.done()]
    if pending:
        await asyncio.wait(pending, timeout=seconds)

