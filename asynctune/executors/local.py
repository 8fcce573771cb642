"""Worker processes on this machine, reused between trials, talking over pipes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import replace

from ..errors import ExecutorError
from ..core.resources import HostInventory, Placement, local_inventory
from ..worker.protocol import TrialRequest, WorkerLostEvent
from .base import Executor, TrialRun
from .leftovers import MARK_ENV, end_marked, new_mark
from .pipe_worker import PipeWorker, QueuedTrialRun, WorkerPool, describe_exit, stderr_tail
from .processes import driver_import_paths, kill_group, kill_process_tree
from ..worker.watchdog import inherits_orphans, reap_orphaned_watchdogs, watchdogs_left

logger = logging.getLogger(__name__)


_READY_S = 60.0  # how long a new worker may take to say it is ready (an import on a slow disk)


class _Worker(PipeWorker, asyncio.SubprocessProtocol):
    """One worker process on this machine, behind its stdin/stdout/stderr pipes."""

    def __init__(self, pool: WorkerPool[_Worker], key: tuple, mark: str) -> None:
        super().__init__(pool, key, "local worker")
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.mark = mark  # in its environment and its descendants' (leftovers.py)
        self.killed = False  # the driver ends its process tree (kill_process_tree)
        self._drain: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pid = self.transport.get_pid()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.keep_stderr(data)
        else:
            self.messages.feed(data)

    def process_exited(self) -> None:
        # The exit is the event, not the last copy of the pipes closing: a process the trial
        # started may hold one for as long as it lives. What the worker wrote before it died is
        # in the pipe already; read it for a moment, then close the pipes.
        if self.pid is not None:
            kill_group(self.pid)  # grandchildren the trial started must not outlive it
        if inherits_orphans():
            reap_orphaned_watchdogs()  # those of workers that ended before this one
        code = self.transport.get_returncode() if self.transport else None
        if code != 0 and self.alive and not self.killed:
            end_marked(self.mark)  # and those that left its process group (a kill of ours ended its tree)
        self._drain = asyncio.get_running_loop().call_later(_DRAIN_S, self._lost)

    def connection_lost(self, exc: Exception | None) -> None:
        # The process has exited and its pipes are drained: every message it sent was seen.
        if self._drain is not None:
            self._drain.cancel()
        self._lost()

    def _lost(self) -> None:
        if not self.alive:
            return
        code = self.transport.get_returncode() if self.transport else None
        if self.pid is not None:
            kill_group(self.pid)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.stdin is not None:
            self.stdin.close()
        run = self.ended(ExecutorError(
            f"worker failed to start: {describe_exit(code)}\n{self.stderr.decode(errors='replace')}"))
        if run is not None:
            tail = stderr_tail(run.request.trial_dir, bytes(self.stderr))
            run.queue.put(WorkerLostEvent(self.exit_reason(code), code, tail))

    def write(self, data: bytes) -> None:
        if self.stdin is not None and not self.stdin.is_closing():
            self.stdin.write(data)

    def abort(self) -> None:
        if self.pid is not None and self.alive:
            kill_group(self.pid)  # it leads its own process group (start_new_session)


_DRAIN_S = 0.3  # how long a dead worker's pipes are read after its exit


class _LocalTrialRun(QueuedTrialRun):
    worker: _Worker

    def __init__(self, worker: _Worker, request: TrialRequest, kill_grace_s: float) -> None:
        super().__init__(worker, request)
        self.kill_grace_s = kill_grace_s

    async def _kill(self) -> None:
        worker = self.worker
        if worker.alive and worker.pid is not None:
            worker.killed = True
            await kill_process_tree(worker.pid, grace_s=self.kill_grace_s, exited=worker.gone)


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

    # A trial runs pipelined when its scheduler allows it (Scheduler.synchronous_results) and
    # no stop criterion is given: results then do not wait for their answer (worker/session.py).
    pipelines_decisions = True

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
        self._pool: WorkerPool[_Worker] = WorkerPool(
            reusable=lambda worker: self.reuse_workers and not self._closed,
            idle_limit=lambda: max(2, int(self._inventory.cpus) if self._inventory else 2))
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
        worker = self._pool.take_idle(key) or await self._spawn(env, key)
        # The driver reads the trial's directory in place: its empty output files may go on to the next trial.
        request = replace(request, hand_on_empty_output=True, in_driver_dir=True)
        run = _LocalTrialRun(worker, request, self.kill_grace_s)
        worker.start(run, request)
        return run

    async def close(self) -> None:
        self._closed = True
        workers = list(self._pool.workers)
        for worker in workers:
            if worker.run is None:
                worker.exit()
        done, pending = await asyncio.wait([w.gone for w in workers], timeout=2.0) if workers else (set(), set())
        for worker in workers:
            worker.killed = True
        await asyncio.gather(*(kill_process_tree(w.pid, grace_s=self.kill_grace_s, exited=w.gone)
                               for w in workers if w.alive and w.pid is not None))
        if pending:
            await asyncio.wait([w.gone for w in workers], timeout=5.0)
        if inherits_orphans():  # the last workers' watchdogs leave a moment after them
            for _ in range(40):
                reap_orphaned_watchdogs()
                if not watchdogs_left():
                    break
                await asyncio.sleep(0.05)

    # Worker pool ---------------------------------------------------------------------------------

    def _worker_env(self, placement: Placement) -> dict[str, str]:
        env = dict(self.env)
        env.update(placement.env())
        if "OMP_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in env:
            # A trial given 1 CPU should not start one BLAS thread per core of the machine.
            env["OMP_NUM_THREADS"] = str(max(1, int(placement.cpu)))
        return env

    async def _spawn(self, env_delta: dict[str, str], key: tuple) -> _Worker:
        env = dict(os.environ)
        env.update(env_delta)
        env["PYTHONUNBUFFERED"] = "1"  # a trial's stdout.txt fills as it prints
        env[MARK_ENV] = mark = new_mark()
        env["PYTHONPATH"] = os.pathsep.join(driver_import_paths() + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        loop = asyncio.get_running_loop()
        # The worker's stdin is a pipe of our own, one-way: asyncio's and uvloop's are socket pairs,
        # and bytes a trial wrote into one would reach a transport that cannot take them.
        stdin_read, stdin_write = os.pipe()
        try:
            _, worker = await loop.subprocess_exec(
                lambda: _Worker(self._pool, key, mark), self.python, "-m", "asynctune.worker",
                stdin=stdin_read, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, cwd=os.getcwd(), start_new_session=True,  # Ctrl-C reaches the driver, not trials
            )
        except BaseException:
            os.close(stdin_write)
            raise
        finally:
            os.close(stdin_read)
        worker.stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, open(stdin_write, "wb", buffering=0))
        self._pool.add(worker)
        try:
            try:
                await asyncio.wait_for(asyncio.shield(worker.ready), _READY_S)
            except (TimeoutError, asyncio.TimeoutError):
                raise ExecutorError(f"a local worker did not start within {_READY_S:g} s (its stderr: "
                                    f"{worker.stderr.decode(errors='replace')[-500:]!r})") from None
        except BaseException:
            if worker.pid is not None and worker.alive:
                await kill_process_tree(worker.pid, grace_s=self.kill_grace_s, exited=worker.gone)
            raise
        return worker

    @property
    def num_workers(self) -> int:
        return len(self._pool)
