"""One attempt of a trial on a Dask cluster, as the controller sees it: a `TrialRun`.

Its Dask task's messages arrive in `mailbox` (from either channel, channel.py) and become
events; its decisions leave through `link`. The attempt watches for its own loss: its task's
future failing (KilledWorker), its worker removed by the scheduler, its connection closing, a
task pinned to a worker that left and never started elsewhere, the scheduler itself gone. A
lost attempt first yields the results that arrived before the loss, then one
`WorkerLostEvent` (or raises `ExecutorLost` when the scheduler is gone). Killing it stops the
trial at its next report, else interrupts its thread, else restarts its worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...errors import ExecutorLost
from ...core.trial import Decision, Mutate
from ...worker.protocol import TrialRequest, WorkerMessages
from ..base import ErrorEvent, ResultEvent, TrialEvent, TrialRun, WorkerLostEvent
from .channel import Runner, RunnerLink
from .worker import interrupt_thread

if TYPE_CHECKING:
    from .executor import DaskExecutor

logger = logging.getLogger(__name__)

HEALTH_CHECK_S = 1.0  # how often a waiting trial checks that the scheduler is still there
_CONFIRM_LOSS_S = 5.0  # how long a worker loss the driver saw first may wait for the scheduler to see it
_UNPLACED_S = 10.0  # how long a task pinned to a worker that left may take to start elsewhere
SCHEDULER_LOST = "the Dask scheduler was lost"

_LOST = object()  # in a run's mailbox: the attempt was lost (its reason in `_lost`)


class DaskTrialRun(TrialRun):
    """One attempt of a trial: a Dask task (its runner's, on the direct channel), whose
    messages arrive in `mailbox` and whose decisions leave through `link`. Its background
    tasks are its executor's (`_spawn`), and it reads the executor's view of the cluster:
    `workers` (removed addresses), `client`, and whether the scheduler was lost."""

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

    def runs_on(self, runner: Runner) -> None:
        """The attempt is the next trial of an idle runner, whose task introduced itself already."""
        info = runner.info
        self.host, self.worker_address, self.pid, self.thread_id, self._nonce = (
            runner.host, info["worker"], info["pid"], info["thread"], info["nonce"])
        self.link = runner.link_for(self)

    @property
    def ended(self) -> bool:
        """events() is over: the controller has read the attempt's last event."""
        return self._ended

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
            if self.executor.workers.is_removed(self.worker_address):
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
        while not self._lost.done() and not self.executor.workers.is_removed(address) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.lose(reason)

    def lose(self, reason: str) -> None:
        """End the attempt as lost: events() reads what came before, then reports the loss."""
        if not self._lost.done():
            self._lost.set_result(reason)
            self.mailbox.put_nowait(_LOST)

    def abandon(self, reason: str) -> None:
        """The executor closes: the attempt is lost, and its task no longer watched."""
        self.lose(reason)
        self._outcome.cancel()

    def _on_outcome(self, outcome: asyncio.Task[str | None]) -> None:
        if not outcome.cancelled() and outcome.result() is not None:
            self.lose(outcome.result())

    async def _watch_health(self) -> None:
        while not self._lost.done():
            await asyncio.sleep(HEALTH_CHECK_S)
            self._check_health()

    def _check_health(self) -> None:
        client = self.executor.client
        if client is None or client.status != "running":
            self.executor._scheduler_lost = True
            self.lose(SCHEDULER_LOST)
        elif self.worker_address is not None and self.executor.workers.is_removed(self.worker_address):
            self.lose(f"the Dask worker {self.worker_address} was lost")
        elif self._nonce is None and self.pinned is not None and self.executor.workers.is_removed(self.pinned):
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
                                   HEALTH_CHECK_S * 5)
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
