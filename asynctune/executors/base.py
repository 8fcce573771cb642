"""The Executor interface: where and how trials run. Local processes, SSH hosts and Dask
workers all sit behind it, so the controller never knows which one it drives.

An executor starts workers, hands a `TrialRequest` to one, and returns a `TrialRun`: an async
iterator of events from that trial. Failures arrive as events (`TrialError`, `WorkerLostEvent`),
never as an await that hangs.
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncio

from ..core.resources import HostInventory, Placement
from ..core.trial import Decision, Mutate
# The events are the protocol's (protocol.py); they are part of this interface too.
from ..worker.protocol import DoneEvent, ErrorEvent, ResultEvent, TrialEvent, TrialRequest, WorkerLostEvent

__all__ = ["DoneEvent", "ErrorEvent", "EventQueue", "Executor", "ResultEvent", "TrialEvent", "TrialRequest", "TrialRun",
           "WorkerLostEvent"]


class EventQueue:
    """A minimal single-consumer queue; cheaper than asyncio.Queue on the result hot path."""

    def __init__(self) -> None:
        self._items: deque[TrialEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, item: TrialEvent) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def discard(self, unwanted: type) -> list[TrialEvent]:
        """Drop the queued events of class `unwanted` (results a decision made void); return them."""
        kept: list[TrialEvent] = []
        dropped: list[TrialEvent] = []
        for item in self._items:
            (dropped if isinstance(item, unwanted) else kept).append(item)
        self._items.clear()
        self._items.extend(kept)
        return dropped

    async def get(self) -> TrialEvent:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class TrialRun(abc.ABC):
    """One trial running on one worker."""

    trial_id: str
    pid: int | None = None  # the worker's process id on its host, for monitoring
    host: str = "localhost"

    @abc.abstractmethod
    def events(self) -> AsyncIterator[TrialEvent]:
        """Results, then exactly one DoneEvent, ErrorEvent or WorkerLostEvent."""

    @abc.abstractmethod
    def decide(self, decision: Decision | Mutate) -> None:
        """Answer the oldest unanswered ResultEvent; the trial is blocked until this arrives,
        unless it runs pipelined (see `waits_for`)."""

    def waits_for(self, iteration: int) -> bool:
        """Whether the trial waits for the decision on its result `iteration` before its next
        step; a pipelined one does not, except at its sync_iterations (worker/session.py)."""
        return True

    @abc.abstractmethod
    async def kill(self) -> None:
        """End the trial now: its worker's whole process tree is ended."""


class Executor(abc.ABC):
    """Runs trials somewhere. Use as `async with executor:` or call start() / close()."""

    async def __aenter__(self) -> Executor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and probe hosts; return only when trials can be launched."""

    @abc.abstractmethod
    def inventories(self) -> list[HostInventory]:
        """What each host offers (after start())."""

    def host_available(self, host: str) -> bool:
        """Whether a trial may be placed on `host` now (an SSH host is not while it is down)."""
        return True

    def watch_hosts(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a host goes down or comes back (the controller's wake-up)."""

    @abc.abstractmethod
    async def launch(self, request: TrialRequest, placement: Placement) -> TrialRun:
        """Start the trial on a worker of `placement.host` with the placement's environment."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End every worker and connection; nothing may outlive this."""

    # For executors on a virtual clock (the simulated one); real executors keep the defaults.

    # Whether the executor may run a trial `pipelined` (see worker/session.py): results the
    # scheduler does not need answered at once (Scheduler.synchronous_results) do not wait a
    # round trip, so a worker does not sleep through two process wake-ups per result.
    pipelines_decisions = False
    # Whether it pipelines a trial that a stop criterion (run(stop=...)) may end at any result.
    # The local executor does not: its round trip is cheap next to a step run too many, and
    # stop={"training_iteration": 10} runs exactly 10 steps. The SSH executor does: over a slow
    # link a round trip per result may cost more than the one step a late stop runs on.
    pipelines_stop_criteria = False

    virtual_time = False
    # How the controller writes results (store/recording_policy.py): "files" flushes each one as it
    # arrives; a simulation's "batched" and "consolidated" write them twice a second.
    recording = "files"

    def now(self) -> float:
        """The executor's clock: wall-clock time, or virtual time for a simulation."""
        return time.time()

    def controller_idle(self, idle: bool) -> None:
        """The controller's main loop starts (True) or stops (False) waiting for something to
        happen. A discrete-event simulation advances its clock only while the controller waits
        and every result it emitted has its decision, so runs are exactly reproducible."""
