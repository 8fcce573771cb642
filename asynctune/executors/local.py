"""Worker processes on this machine, reused between trials, talking over pipes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import psutil

from ..errors import ExecutorError
from ..core.resources import HostInventory, Placement, local_inventory
from ..core.trial import Decision, Mutate
from .base import EventQueue, Executor, TrialEvent, TrialRun, WorkerLostEvent
from ..worker.protocol import (
    EXIT_FRAME, DoneEvent, ErrorEvent, ResultEvent, TrialRequest, WorkerMessages, encode_decision, run_frame,
)

logger = logging.getLogger(__name__)

_STDERR_TAIL_BYTES = 4096


def stderr_tail(trial_dir: str | None, fallback: bytes = b"") -> str:
    """The last lines a trial (or its worker) wrote to stderr: evidence for a lost worker."""
    if trial_dir:
        try:
            with open(os.path.join(trial_dir, "stderr.txt"), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _STDERR_TAIL_BYTES))
                data = f.read()
                if data:
                    return data.decode(errors="replace")
        except OSError:
            pass
    return fallback.decode(errors="replace")


def detach_ended_run(worker: Any, event: DoneEvent | ErrorEvent) -> Any:
    """Take the run whose trial just ended off its (local or SSH) worker; None if it had none."""
    run, worker.run = worker.run, None
    if run is not None and event.__class__ is ErrorEvent:
        # The worker may have failed to unpickle the trainable: send it again next time.
        worker.trainables.discard(run.request.trainable_key)
    return run


def describe_exit(code: int | None) -> str:
    if code is None:
        return "the worker disappeared"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"the worker was killed by {name}{hint}"
    return f"the worker exited with code {code}"


async def kill_process_tree(pid: int, *, grace_s: float = 3.0, exited: asyncio.Future | None = None) -> None:
    """SIGTERM the process and all its descendants, wait up to grace_s, SIGKILL what is left.

    When the process is our own child, pass `exited` (resolved by the event loop when it is
    reaped): psutil must not wait on it, or it would reap the child behind the loop's back.
    """
    try:
        parent = psutil.Process(pid)
        descendants = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        parent, descendants = None, []
    others = descendants if exited is not None else descendants + ([parent] if parent else [])
    for proc in ([parent] if parent else []) + descendants:
        _signal(proc, signal.SIGTERM)

    def wait_others(timeout: float) -> list[psutil.Process]:
        return psutil.wait_procs(others, timeout=timeout)[1]

    alive = await asyncio.to_thread(wait_others, grace_s)
    if exited is not None and parent is not None:
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace_s)
        except (TimeoutError, asyncio.TimeoutError):
            _signal(parent, signal.SIGKILL)
            await exited
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    if alive:
        await asyncio.to_thread(psutil.wait_procs, alive, timeout=grace_s)


def _signal(proc: psutil.Process, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except psutil.NoSuchProcess:
        pass


class _Worker(asyncio.SubprocessProtocol):
    """One worker process: its pipes, its state, and the trial it runs."""

    def __init__(self, executor: LocalExecutor, env_key: tuple) -> None:
        self.executor = executor
        self.env_key = env_key
        self.messages = WorkerMessages("local worker", self._on_result, self._on_end)
        self.ready: asyncio.Future[dict[str, Any]] = self.messages.ready
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.stderr = bytearray()
        self.run: _LocalTrialRun | None = None
        self.trainables: set[str] = set()
        self.pid: int | None = None
        self.alive = True

    # asyncio.SubprocessProtocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pid = self.transport.get_pid()
        self.stdin = self.transport.get_pipe_transport(0)  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.stderr += data
            del self.stderr[:-_STDERR_TAIL_BYTES]
            return
        self.messages.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        # The process has exited and its pipes are drained: every message it sent was seen.
        self.alive = False
        code = self.transport.get_returncode() if self.transport else None
        self.executor._forget(self)
        if self.pid is not None:
            _kill_group(self.pid)  # grandchildren the trial started must not outlive it
        if not self.ready.done():
            self.ready.set_exception(ExecutorError(
                f"worker failed to start: {describe_exit(code)}\n{self.stderr.decode(errors='replace')}"))
        run, self.run = self.run, None
        if run is not None:
            tail = stderr_tail(run.request.trial_dir, bytes(self.stderr))
            run.queue.put(WorkerLostEvent(describe_exit(code), code, tail))
        if not self.gone.done():
            self.gone.set_result(None)

    # Messages ------------------------------------------------------------------------------------

    def _on_result(self, event: ResultEvent) -> None:
        if self.run is not None:
            self.run.queue.put(event)

    def _on_end(self, event: DoneEvent | ErrorEvent) -> None:
        run = detach_ended_run(self, event)
        if run is not None:
            self.executor._reclaim(self)  # idle again before the controller even sees the event
            run.queue.put(event)

    def send(self, data: bytes) -> None:
        if self.stdin is not None and not self.stdin.is_closing():
            self.stdin.write(data)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _LocalTrialRun(TrialRun):
    def __init__(self, worker: _Worker, request: TrialRequest) -> None:
        self.worker = worker
        self.request = request
        self.trial_id = request.trial_id
        self.pid = worker.pid
        self.queue = EventQueue()

    async def events(self) -> AsyncIterator[TrialEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if not isinstance(event, ResultEvent):
                return

    def decide(self, decision: Decision | Mutate) -> None:
        if self.worker.messages.answering():
            self.worker.send(encode_decision(decision))

    async def kill(self) -> None:
        worker = self.worker
        if worker.alive and worker.pid is not None:
            await kill_process_tree(worker.pid, grace_s=worker.executor.kill_grace_s, exited=worker.gone)


class LocalExecutor(Executor):
    """Runs trials in worker processes on this machine.

    Workers are fresh interpreters (`python -m asynctune.worker`, never a fork of the driver's
    event loop), placed on GPUs through CUDA_VISIBLE_DEVICES, and reused for the next trial with
    the same placement environment, so short trials do not pay a process start each.

    Example:
        >>> run(train, config=space, executor=LocalExecutor(cpus=4))

    Args:
        cpus: CPU slots to offer (default: the CPUs this process may use).
        reuse_workers: Keep workers between trials (default True). Trials that keep global
            state between runs (e.g. a module-level cache) may want False.
        python: The interpreter for workers.
        env: Extra environment variables for every worker.
        kill_grace_s: Time between SIGTERM and SIGKILL when a trial's process tree is ended.
    """

    def __init__(self, *, cpus: float | None = None, reuse_workers: bool = True, python: str | None = None,
                 env: dict[str, str] | None = None, kill_grace_s: float = 3.0) -> None:
        if cpus is not None and not cpus > 0:
            raise ValueError(f"LocalExecutor: cpus must be > 0, got {cpus=}")
        if kill_grace_s < 0:
            raise ValueError(f"LocalExecutor: kill_grace_s must be >= 0, got {kill_grace_s=}")
        self.cpus = cpus
        self.reuse_workers = reuse_workers
        self.python = python or sys.executable
        self.env = dict(env or {})
        self.kill_grace_s = kill_grace_s
        self._inventory: HostInventory | None = None
        self._workers: set[_Worker] = set()
        self._idle: dict[tuple, deque[_Worker]] = {}
        self._closed = False

    async def start(self) -> None:
        self._inventory = await asyncio.to_thread(local_inventory, cpus=self.cpus)

    def inventories(self) -> list[HostInventory]:
        if self._inventory is None:
            raise ExecutorError("LocalExecutor.start() was not called")
        return [self._inventory]

    async def launch(self, request: TrialRequest, placement: Placement) -> TrialRun:
        if self._closed:
            raise ExecutorError("LocalExecutor is closed")
        env = self._worker_env(placement)
        key = tuple(sorted(env.items()))
        worker = self._take_idle(key) or await self._spawn(env, key)
        if request.trainable_key in worker.trainables:
            request = replace(request, trainable_blob=None)
        else:
            worker.trainables.add(request.trainable_key)
        run = _LocalTrialRun(worker, request)
        worker.run = run
        worker.send(run_frame(request))
        return run

    async def close(self) -> None:
        self._closed = True
        workers = list(self._workers)
        for worker in workers:
            if worker.run is None:
                worker.send(EXIT_FRAME)
        done, pending = await asyncio.wait([w.gone for w in workers], timeout=2.0) if workers else (set(), set())
        await asyncio.gather(*(kill_process_tree(w.pid, grace_s=self.kill_grace_s, exited=w.gone)
                               for w in workers if w.alive and w.pid is not None))
        if pending:
            await asyncio.wait([w.gone for w in workers], timeout=5.0)

    # Worker pool ---------------------------------------------------------------------------------

    def _worker_env(self, placement: Placement) -> dict[str, str]:
        env = dict(self.env)
        env.update(placement.env())
        if "OMP_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in env:
            # A trial given 1 CPU should not start one BLAS thread per core of the machine.
            env["OMP_NUM_THREADS"] = str(max(1, int(placement.cpu)))
        return env

    def _take_idle(self, key: tuple) -> _Worker | None:
        idle = self._idle.get(key)
        while idle:
            worker = idle.popleft()
            if worker.alive:
                return worker
        return None

    async def _spawn(self, env_delta: dict[str, str], key: tuple) -> _Worker:
        env = dict(os.environ)
        env.update(env_delta)
        env["PYTHONUNBUFFERED"] = "1"  # a trial's stdout.txt fills as it prints
        env["PYTHONPATH"] = os.pathsep.join(_import_paths() + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        loop = asyncio.get_running_loop()
        _, worker = await loop.subprocess_exec(
            lambda: _Worker(self, key), self.python, "-m", "asynctune.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, cwd=os.getcwd(), start_new_session=True,  # Ctrl-C reaches the driver, not trials
        )
        self._workers.add(worker)
        try:
            await worker.ready
        except BaseException:
            if worker.pid is not None and worker.alive:
                await kill_process_tree(worker.pid, grace_s=self.kill_grace_s, exited=worker.gone)
            raise
        return worker

    def _reclaim(self, worker: _Worker) -> None:
        if self.reuse_workers and not self._closed and worker.alive:
            self._idle.setdefault(worker.env_key, deque()).append(worker)
            self._trim_idle()
        else:
            worker.send(EXIT_FRAME)

    def _trim_idle(self) -> None:
        """Keep few idle workers per environment, so GPU placements do not pile up processes."""
        limit = max(2, int(self._inventory.cpus) if self._inventory else 2)
        idle = [w for queue in self._idle.values() for w in queue]
        for worker in idle[: max(0, len(idle) - limit)]:
            self._idle[worker.env_key].remove(worker)
            worker.send(EXIT_FRAME)

    def _forget(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        queue = self._idle.get(worker.env_key)
        if queue and worker in queue:
            queue.remove(worker)

    @property
    def num_workers(self) -> int:
        return len(self._workers)


def _import_paths() -> list[str]:
    """The driver's own import paths (its script's directory, the working directory, paths it
    added), so a worker imports the modules a cloudpickled trainable refers to by name."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for path in [os.getcwd(), *sys.path]:
        path = os.path.abspath(path or os.getcwd())
        real = os.path.realpath(path)
        if not os.path.isdir(path) or path in paths or any(real.startswith(p + os.sep) for p in prefixes):
            continue  # the worker's interpreter already has its own stdlib and site-packages
        paths.append(path)
    return paths
