"""Replay of recorded learning curves on a virtual clock: benchmarks of schedulers in seconds.

A `Workload` (workloads.py) is a table: for each recorded config, the value of each metric after each epoch
and the time each epoch took. `SimulatedExecutor` runs trials against that table instead of
training anything: a trial of config c reports epoch k + 1 of c's curve `epoch_time_s[c][k]`
virtual seconds after its previous result, through the same Controller, schedulers and
searchers as a real run, on `n_workers` virtual workers. Hours of training replay in seconds.

Discrete-event simulation. The executor keeps a heap of the next result of every running
trial, ordered by virtual time. It advances the clock (pops the heap and hands that one
result to its trial) only when the controller is waiting for something to happen, every
result it handed out has its decision and every event it queued has been read. Everything
else the controller does (decide, launch a new trial at the current virtual time, resume a
paused one) happens at a single instant. The event loop runs callbacks in a fixed order, so a
run with the same seeds gives exactly the same sequence of results.

Configs that are not in the table (a model-based searcher's proposal, a PBT mutation) are
answered by the nearest recorded config (`Workload.nearest`). A trial keeps the curve it was given; after a `Mutate` it
continues on the new config's nearest curve from the checkpoint's epoch (PBT's model carries
over only through that epoch: the surrogate is the curve, not the weights).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import os
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import numpy as np

from ...errors import AsynctuneError, ExecutorError
from ...core.resources import HostInventory, Placement
from ...worker.session import read_checkpoint_meta
from ...store.names import checkpoint_dir, checkpoint_meta
from ...store.recording_policy import recording_policy
from ...core.trial import CONTINUE, PAUSE, STOP, Decision, Mutate
from ..base import DoneEvent, EventQueue, Executor, ResultEvent, TrialEvent, TrialRun, WorkerLostEvent
from ...worker.protocol import TrialRequest
from .workloads import Workload

logger = logging.getLogger(__name__)

# Extra passes through the event loop's ready queue before the clock moves, so that work
# already queued (a coroutine scheduler reacting to a trial's end, a trial task about to
# launch) happens at the current instant. More passes never change a result, only cost time.
_SETTLE_PASSES = 4


def _call_soon_on_running_loop(*args: Any) -> Any:
    return asyncio.get_running_loop().call_soon(*args)


def replay(config: dict[str, Any]) -> None:
    """The trainable to pass to `run()` with a SimulatedExecutor; it never runs in a worker."""
    raise AsynctuneError("replay() only runs on a SimulatedExecutor: pass executor=SimulatedExecutor(workload)")


class SimulatedExecutor(Executor):
    """Runs trials by replaying a `Workload`'s learning curves on a virtual clock.

    Each of `n_workers` virtual workers runs one trial at a time (the inventory offers
    `n_workers` CPU slots; keep the default one CPU per trial). Results carry the metrics of
    the trial's curve at that epoch, `training_iteration`, `time_this_iter_s`, `time_total_s`
    and `timestamp` on the virtual clock (which starts at 0), and `table_index`, the recorded
    config that answered. `run(time_budget_s=...)` counts virtual seconds.

    Decisions: CONTINUE schedules the next epoch; STOP ends the trial; PAUSE writes a small
    checkpoint directory (iteration and time only) and frees the worker, and a resumed trial
    continues from that epoch; Mutate continues from the checkpoint's epoch on the new
    config's curve. `run(checkpoint_frequency=k)` attaches such a checkpoint to every k-th
    result (PBT needs them to clone a trial).

    Example:
        >>> workload = Workload.load("benchmarks/workloads/mlp_digits.json.gz")
        >>> analysis = run(replay, config=workload.space(), num_samples=-1, metric="val_error", mode="min",
        ...                scheduler=ASHAScheduler(max_t=27), executor=SimulatedExecutor(workload, n_workers=4),
        ...                time_budget_s=600, seed=0, verbose=0)

    Args:
        workload: The table to replay, or the path of a workload file.
        n_workers: How many trials run at the same time.
        seed: Seeds the noise added to `workload.metric` (the same seed, the same noise).
        noise: Standard deviation of Gaussian noise added to every reported value of the
            workload's metric (0: the recorded values exactly).
        overhead_s: Virtual seconds a trial spends starting or resuming before its first epoch.
        recording: How the run writes (asynctune.store.recording): "consolidated" (the default):
            every trial's results in one results.jsonl at the top of the experiment, appended
            twice a second, the trial table and configs in experiment.json at the end, no
            directory per trial (only for checkpoints) and no journal; "batched": the files of
            a real run (a directory per trial), written twice a second and when a trial ends;
            "files": every result written and flushed as it arrives, as with a real executor.
            Either way TensorBoard files only when `run(tensorboard=True)` asks, and
            ExperimentAnalysis reads the results the same.
    """

    virtual_time = True

    def __init__(self, workload: Workload | str, *, n_workers: int = 4, seed: int | None = 0, noise: float = 0.0,
                 overhead_s: float = 0.0, recording: str = "consolidated") -> None:
        if isinstance(workload, str):
            workload = Workload.load(workload)
        if not isinstance(workload, Workload):
            raise ValueError(f"SimulatedExecutor: workload must be a Workload or a path, got {workload!r}")
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"SimulatedExecutor: n_workers must be an integer >= 1, got {n_workers=}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"SimulatedExecutor: seed must be an integer >= 0 or None, got {seed=}")
        if not (isinstance(noise, (int, float)) and noise >= 0):
            raise ValueError(f"SimulatedExecutor: noise must be a number >= 0, got {noise=}")
        if not (isinstance(overhead_s, (int, float)) and overhead_s >= 0):
            raise ValueError(f"SimulatedExecutor: overhead_s must be a number >= 0, got {overhead_s=}")
        self.recording = recording_policy(recording, who="SimulatedExecutor").name
        self.workload = workload
        self.n_workers, self.seed, self.noise, self.overhead_s = n_workers, seed or 0, float(noise), float(overhead_s)
        self._now = 0.0
        self._heap: list[tuple[float, int, _SimulatedRun]] = []
        self._sequence = 0  # breaks ties in the heap: first scheduled, first out
        self._runs: set[_SimulatedRun] = set()
        self._controller_idle = False
        self._awaiting_decision = 0
        self._unread_events = 0
        self._generation = 0
        self._closed = False
        self._call_soon: Callable[..., Any] = _call_soon_on_running_loop  # until start() looks the loop up
        self._started = False
        self.results_replayed = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_call_soon", None)  # a running loop's method: not picklable, and not needed again
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._call_soon = _call_soon_on_running_loop

    # Executor ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        self._call_soon = asyncio.get_running_loop().call_soon  # the clock's loop, looked up once

    def inventories(self) -> list[HostInventory]:
        if not self._started:
            raise ExecutorError("SimulatedExecutor.start() was not called")
        return [HostInventory(name="simulated", cpus=float(self.n_workers))]

    async def launch(self, request: TrialRequest, placement: Placement) -> TrialRun:
        if self._closed:
            raise ExecutorError("SimulatedExecutor is closed")
        run = _SimulatedRun(self, request)
        self._runs.add(run)
        run.begin(request.config, request.start_iteration, request.start_time_total, self.overhead_s)
        self._poke()
        return run

    async def close(self) -> None:
        self._closed = True
        for run in list(self._runs):
            run.end(WorkerLostEvent("the simulated executor was closed"))
        self._heap.clear()

    def now(self) -> float:
        return self._now

    def controller_idle(self, idle: bool) -> None:
        self._controller_idle = idle
        self._poke()

    # The discrete-event loop ---------------------------------------------------------------------

    def _schedule(self, run: _SimulatedRun, at: float) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (at, self._sequence, run))

    def _queue(self, run: _SimulatedRun, event: TrialEvent) -> None:
        self._unread_events += 1
        run.queue.put(event)

    def _read(self, event: TrialEvent) -> None:
        self._unread_events -= 1
        if not isinstance(event, ResultEvent):
            # The trial's task ends and wakes the controller, which will call controller_idle again.
            self._controller_idle = False
        self._poke()

    def _poke(self) -> None:
        """Something changed: check, once the event loop has settled, whether the clock may move."""
        if self._closed:
            return
        self._generation += 1
        self._call_soon(self._settle, self._generation, 0)

    def _settle(self, generation: int, passes: int) -> None:
        if generation != self._generation or self._closed or not self._quiescent():
            return  # a newer poke will look again
        if passes < _SETTLE_PASSES:
            self._call_soon(self._settle, generation, passes + 1)
            return
        self._advance()

    def _quiescent(self) -> bool:
        return self._controller_idle and self._awaiting_decision == 0 and self._unread_events == 0

    def _advance(self) -> None:
        """Move the clock to the next result of any running trial and hand that result out."""
        while self._heap:
            at, _, run = heapq.heappop(self._heap)
            if run.finished or run.next_at != at:
                continue  # stopped, paused or killed since it was scheduled
            self._now = max(self._now, at)
            run.emit_result()
            return
        if self._runs:
            logger.warning("simulation stalled: %d trials run but none has a next result", len(self._runs))

    def _noise(self, trial_id: str, iteration: int) -> float:
        if not self.noise:
            return 0.0
        rng = np.random.default_rng([self.seed, zlib.crc32(trial_id.encode()), iteration])
        return float(rng.normal(0.0, self.noise))


class _SimulatedRun(TrialRun):
    """One trial on a virtual worker: where it is on which curve, and its next result's time."""

    def __init__(self, executor: SimulatedExecutor, request: TrialRequest) -> None:
        self.executor = executor
        self.request = request
        self.trial_id = request.trial_id
        self.host = "simulated"
        self.queue = EventQueue()
        self.index = 0  # the curve (row of the table) the trial follows
        self.iteration = 0  # epochs done
        self.time_total = 0.0
        self.next_at: float | None = None  # when the next epoch ends
        self.awaiting = False
        self.finished = False

    # Driven by the executor -----------------------------------------------------------------------

    def begin(self, config: Mapping[str, Any], iteration: int, time_total: float, delay: float) -> None:
        """Start (or continue) on config's curve at `iteration`; the next epoch ends after `delay` + its time."""
        self.index = self.executor.workload.nearest(config)
        self.iteration, self.time_total = int(iteration), float(time_total)
        if self.iteration >= self.executor.workload.max_epochs:
            self.end(DoneEvent("finished", self._checkpoint() if self.request.checkpoint_at_end else None))
            return
        self._next_epoch(delay)

    def _next_epoch(self, delay: float = 0.0) -> None:
        epoch = self.executor.workload.epoch_time_s[self.index, self.iteration]
        self.next_at = self.executor.now() + delay + epoch
        self.executor._schedule(self, self.next_at)

    def emit_result(self) -> None:
        executor, workload = self.executor, self.executor.workload
        k = self.iteration
        elapsed = float(workload.epoch_time_s[self.index, k])
        self.iteration += 1
        self.time_total += elapsed
        self.next_at = None
        result: dict[str, Any] = {name: float(curve[self.index, k]) for name, curve in workload.curves.items()}
        result[workload.metric] += executor._noise(self.trial_id, self.iteration)
        result.update(trial_id=self.trial_id, training_iteration=self.iteration, time_this_iter_s=elapsed,
                      time_total_s=self.time_total, timestamp=executor.now(), hostname="simulated", pid=0,
                      table_index=self.index)
        checkpoint = None
        frequency = self.request.checkpoint_frequency
        last = self.iteration >= workload.max_epochs
        if (frequency and self.iteration % frequency == 0) or (last and self.request.checkpoint_at_end):
            checkpoint = self._checkpoint()
        self.awaiting = True
        executor._awaiting_decision += 1
        executor.results_replayed += 1
        executor._queue(self, ResultEvent(result, checkpoint))

    def end(self, event: TrialEvent) -> None:
        if self.finished:
            return
        self.finished = True
        self.next_at = None
        self.executor._runs.discard(self)
        self.executor._queue(self, event)

    def _checkpoint(self) -> str:
        """A small real directory that says where the trial was, so pause and restore work as for real."""
        path = checkpoint_dir(self.request.trial_dir, self.iteration)
        os.makedirs(path, exist_ok=True)
        with open(checkpoint_meta(path), "w") as f:
            json.dump({"trial_id": self.trial_id, "iteration": self.iteration, "time_total_s": self.time_total,
                       "table_index": self.index}, f)
        return path

    # TrialRun ------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[TrialEvent]:
        while True:
            event = await self.queue.get()
            self.executor._read(event)
            yield event
            if not isinstance(event, ResultEvent):
                return

    def decide(self, decision: Decision | Mutate) -> None:
        if not self.awaiting:
            return  # killed meanwhile
        self.awaiting = False
        executor = self.executor
        executor._awaiting_decision -= 1
        if self.finished:  # killed while the scheduler decided
            return
        if isinstance(decision, Mutate):
            iteration, time_total = self.iteration, self.time_total
            if decision.checkpoint is not None:
                meta = read_checkpoint_meta(decision.checkpoint)
                iteration = int(meta.get("iteration", iteration))
                time_total = float(meta.get("time_total_s", time_total))
            self.begin(decision.config, iteration, time_total, 0.0)
        elif decision is CONTINUE:
            if self.iteration >= executor.workload.max_epochs:
                self.end(DoneEvent("finished", None))
            else:
                self._next_epoch()
        elif decision is STOP:
            self.end(DoneEvent("stopped", None))
        elif decision is PAUSE:
            self.end(DoneEvent("paused", self._checkpoint()))
        else:
            raise ExecutorError(f"unknown decision {decision!r} for {self.trial_id}")
        executor._poke()

    async def kill(self) -> None:
        if self.awaiting:
            self.awaiting = False
            self.executor._awaiting_decision -= 1
        self.end(WorkerLostEvent("killed by the controller"))
