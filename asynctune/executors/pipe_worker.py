"""What every executor whose workers speak the framed protocol over a byte pipe shares: the
worker's state and message wiring (`PipeWorker`), the pool of idle workers per environment
(`WorkerPool`), the trial run whose events pass through one queue (`QueuedTrialRun`), the
trainable sent once per worker (`send_once`), and the evidence for a lost worker.

The local executor's workers are subprocesses behind pipes, the SSH executor's are processes
behind SSH session channels: they differ only in how bytes are written and how a process is
ended, which each supplies (`write`, `TrialRun.kill`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, Generic, TypeVar

from ..core.trial import Decision, Mutate
from ..store import checkpoints
from ..store.names import stderr_file
from ..worker.protocol import (
    EXIT_CHANNEL_CLOSED, EXIT_FRAME, DoneEvent, ErrorEvent, ResultEvent, TrialEvent, TrialRequest, WorkerMessages,
    encode_decision, run_frame,
)
from .base import EventQueue, TrialRun

logger = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096


def stderr_tail(trial_dir: str | None, fallback: bytes = b"") -> str:
    """The last lines a trial (or its worker) wrote to stderr: evidence for a lost worker."""
    if trial_dir:
        try:
            with open(stderr_file(trial_dir), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - STDERR_TAIL_BYTES))
                data = f.read()
                if data:
                    return data.decode(errors="replace")
        except OSError:
            pass
    return fallback.decode(errors="replace")


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
    if code == EXIT_CHANNEL_CLOSED:
        return (f"the worker exited with code {code}: its trial closed the worker's descriptors to the driver "
                f"(os.closerange(3, ...), or a library that closes every descriptor it did not open)")
    return f"the worker exited with code {code}"


def send_once(trainables: set[str], request: TrialRequest) -> TrialRequest:
    """The request to send to a worker (or Dask runner) that holds `trainables`: without the
    trainable's bytes when it has them already, since a trainable can be megabytes."""
    if request.trainable_key in trainables:
        return replace(request, trainable_blob=None)
    trainables.add(request.trainable_key)
    return request


class PipeWorker:
    """One worker process behind a byte pipe: its messages, readiness, end, stderr tail and the
    trial it runs. Subclasses feed it bytes (`feed`, `keep_stderr`), say how bytes are written
    (`write`) and call `ended()` once the process is gone."""

    def __init__(self, pool: WorkerPool[Any], key: tuple, where: str) -> None:
        self.pool = pool
        self.key = key  # the environment it was started with: reused only for the same one
        self.messages = WorkerMessages(where, self._on_result, self._on_end, self._on_broken)
        self.messages.on_mutated = self._on_mutated  # a pipelined trial took a MUTATE
        self.ready: asyncio.Future[dict[str, Any]] = self.messages.ready
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stderr = bytearray()
        self.run: QueuedTrialRun | None = None
        self.trainables: set[str] = set()
        self.pid: int | None = None
        self.alive = True
        self.failure: str | None = None  # why the driver ended it (a damaged stream), for its trial
        self._outbox = bytearray()  # answers to a pipelined trial, sent together (send_soon)

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """End the process now (its stream is damaged): SIGKILL, or close its channel."""
        raise NotImplementedError

    def exit_reason(self, code: int | None) -> str:
        """Why the process ended, for its trial's WorkerLostEvent."""
        return self.failure or describe_exit(code)

    def send(self, data: bytes) -> None:
        if self._outbox:  # what send_soon() holds goes first: the worker reads everything in order
            data = bytes(self._outbox) + data
            self._outbox.clear()
        if self.alive and self.failure is None:  # nothing more goes to a worker being ended
            self.write(data)

    def send_soon(self, data: bytes) -> None:
        """Send `data` with the others of this turn of the event loop, in one write: a pipelined
        trial's results arrive many to a read, and their answers then leave in one system call."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._send_held)
        self._outbox += data

    def _send_held(self) -> None:
        if self._outbox:
            self.send(b"")

    def exit(self) -> None:
        self.send(EXIT_FRAME)

    def keep_stderr(self, data: bytes) -> None:
        self.stderr += data
        del self.stderr[:-STDERR_TAIL_BYTES]

    def start(self, run: QueuedTrialRun, request: TrialRequest) -> None:
        """Hand the worker its next trial (`request` as the worker must see it)."""
        self.run = run
        self.send(run_frame(send_once(self.trainables, request)))

    def ended(self, failure: Exception) -> QueuedTrialRun | None:
        """The process is gone: leave the pool, fail `ready` if it never was, resolve `gone`.
        Returns the trial it was running, if any, for the caller's WorkerLostEvent."""
        self.alive = False
        self.pool.forget(self)
        if not self.ready.done():
            self.ready.set_exception(failure)
        run, self.run = self.run, None
        if not self.gone.done():
            self.gone.set_result(None)
        return run

    def _on_broken(self, why: str) -> None:
        if self.failure is None:
            self.failure = f"the worker's protocol stream was damaged: it sent {why}; the worker was ended"
        self.abort()

    def _on_result(self, event: ResultEvent) -> None:
        if self.run is not None:
            self.run.on_result(event)

    def _on_mutated(self) -> None:
        if self.run is not None:
            self.run.on_mutated()

    def _on_end(self, event: DoneEvent | ErrorEvent) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        if event.__class__ is ErrorEvent:
            # The worker may have failed to unpickle the trainable: send it again next time.
            self.trainables.discard(run.request.trainable_key)
        if changed := event.info.get("changed"):  # what the trial changed would leak into the next one
            logger.info("%s retired: trial %s changed its %s", self.messages.where, run.trial_id, ", ".join(changed))
            self.exit()
        else:
            self.pool.reclaim(self)  # idle again before the controller even sees the event
        run.on_end(event)


W = TypeVar("W", bound=PipeWorker)


class WorkerPool(Generic[W]):
    """Every worker of one host, and the idle ones by environment, so that the next trial with
    the same environment reuses a process instead of starting one."""

    def __init__(self, *, reusable: Callable[[W], bool], idle_limit: Callable[[], int]) -> None:
        self.workers: set[W] = set()
        self.idle: dict[tuple, deque[W]] = {}
        self._reusable = reusable
        self._idle_limit = idle_limit

    def add(self, worker: W) -> None:
        self.workers.add(worker)

    def take_idle(self, key: tuple) -> W | None:
        idle = self.idle.get(key)
        while idle:
            worker = idle.popleft()
            if worker.alive:
                return worker
        return None

    def reclaim(self, worker: W) -> None:
        """The worker's trial ended: keep it for the next one, or let it exit."""
        if not (worker.alive and self._reusable(worker)):
            worker.exit()
            return
        self.idle.setdefault(worker.key, deque()).append(worker)
        idle = [w for queue in self.idle.values() for w in queue]
        # Few idle workers per host, so GPU placements (one environment each) do not pile up processes.
        for extra in idle[: max(0, len(idle) - self._idle_limit())]:
            self.idle[extra.key].remove(extra)
            extra.exit()

    def forget(self, worker: W) -> None:
        self.workers.discard(worker)
        queue = self.idle.get(worker.key)
        if queue and worker in queue:
            queue.remove(worker)

    def clear_idle(self) -> None:
        self.idle.clear()

    def __len__(self) -> int:
        return len(self.workers)


class QueuedTrialRun(TrialRun):
    """A trial on a `PipeWorker`: its events pass through one queue, in order, and end with
    exactly one DoneEvent, ErrorEvent or WorkerLostEvent.

    A `pipelined` trial (TrialRequest.pipelined, worker/session.py) does not wait for each
    answer, and this is the driver's side of that protocol, the same for every executor: it
    counts the results not answered yet; after a decision other than CONTINUE it drops the
    results the worker sent before it read that decision (queued or still to come: they are
    void), up to the worker's ("mutated",) after a MUTATE; and it holds the trial's end until
    every result before it is decided. Subclasses say how a decision travels (`send_decision`)
    and how the worker is ended (`_kill`).
    """

    def __init__(self, worker: PipeWorker, request: TrialRequest) -> None:
        self.worker = worker
        self.request = request
        self.trial_id = request.trial_id
        self.pid = worker.pid
        self.queue = EventQueue()
        self.pipelined = request.pipelined
        self._unanswered = 0  # pipelined: results delivered and not answered yet
        # Pipelined: why the worker's results are void ("end" after a STOP or PAUSE, "mutate"
        # until it says "mutated"): it sent them before it read that decision.
        self._dropping: str | None = None
        self._held_end: TrialEvent | None = None  # pipelined: its end, held until its results are decided
        self._ended = False  # the worker said "done" or "error": it may run another trial now
        self._killed = False  # kill() was called: no answer to its results will come

    async def events(self) -> AsyncIterator[TrialEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if not isinstance(event, ResultEvent):
                return

    def decide(self, decision: Decision | Mutate) -> None:
        if self.pipelined:
            if not self._answered(decision):
                return
        elif not self.worker.messages.answering():
            return
        self.send_decision(decision)

    def send_decision(self, decision: Decision | Mutate) -> None:
        """Send the decision to the worker (SSH uploads a MUTATE's checkpoint first)."""
        if self.pipelined:  # the trial is not waiting for this one
            self.worker.send_soon(encode_decision(decision))
        else:
            self.worker.send(encode_decision(decision))

    def waits_for(self, iteration: int) -> bool:
        return not self.pipelined or iteration in self.request.sync_iterations

    async def kill(self) -> None:
        self._killed = True
        if self._ended:  # its worker has moved on, maybe to another trial: only this trial's end is left
            self._release_end()
            return
        await self._kill()
        self._release_end()  # its end came while it was being killed

    async def _kill(self) -> None:
        """End the worker's whole process tree."""
        raise NotImplementedError

    # From the worker -----------------------------------------------------------------------------

    def on_result(self, event: ResultEvent) -> None:
        if self.pipelined and not self._counted(event):
            return
        self.queue.put(event)

    def on_end(self, event: TrialEvent) -> None:
        self._ended = True
        if self._dropping == "mutate":
            self._missed_mutate()
        if self.pipelined and self._unanswered and not self._killed:  # it did not wait for its last answers:
            self._held_end = event  # they are decided first (a killed trial's never are)
            return
        self.queue.put(event)

    def on_mutated(self) -> None:
        self._dropping = None  # what follows is the new config's

    # Pipelined bookkeeping ---------------------------------------------------------------------

    def _counted(self, event: ResultEvent) -> bool:
        """Count a result the worker sent, unless it is void (sent after a decision it had not read)."""
        if self._dropping:
            self.void(event)
            return False
        self._unanswered += 1
        return True

    def void(self, event: ResultEvent) -> None:
        """A result the driver drops: the checkpoint it carries would be no step the trial recorded."""
        if event.checkpoint is not None:
            checkpoints.discard(event.checkpoint)

    def _answered(self, decision: Decision | Mutate) -> bool:
        """Account for the decision on the oldest unanswered result; whether it goes to the worker."""
        if not self._unanswered or self._dropping:
            logger.error("%s: a decision for %s answers no result; dropped", self.worker.messages.where,
                         self.trial_id)
            return False
        self._unanswered -= 1
        if decision is not Decision.CONTINUE:  # the results the worker sent after this one are void
            self._dropping = "mutate" if isinstance(decision, Mutate) else "end"
            for event in self.queue.discard(ResultEvent):
                self.void(event)  # type: ignore[arg-type]
            self._unanswered = 0
        if self._ended:  # nothing more goes to its worker: its answers would reach another trial
            if isinstance(decision, Mutate):
                self._missed_mutate()
            if not self._unanswered:
                self._release_end()
            return False
        return True

    def _missed_mutate(self) -> None:
        logger.warning("trial %s ended before it took the MUTATE decided on a result its scheduler's "
                       "synchronous_results did not name: it ran its old config to the end (name the "
                       "iterations where the scheduler mutates)", self.trial_id)

    def _release_end(self) -> None:
        if self._held_end is not None:
            self.queue.put(self._held_end)
            self._held_end = None
