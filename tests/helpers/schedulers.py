"""Tools the scheduler tests share: a recording TrialControl, scripted trials, and a tiny
synchronous "controller" (Simulation) that plays trials of fixed quality against a scheduler."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from asynctune import PAUSE, STOP, Scheduler, Status, Trial


class RecordingControl:
    """A TrialControl that records what the scheduler asked for and applies it to the trials."""

    def __init__(self, trials: Sequence[Trial] = (), on_stop: Callable[[Trial], None] | None = None) -> None:
        self.trials: list[Trial] = list(trials)
        self.actions: list[tuple[Any, ...]] = []
        self._on_stop = on_stop

    def stop_trial(self, trial: Trial) -> None:
        self.actions.append(("stop", trial.trial_id))
        trial.status = Status.TERMINATED
        if self._on_stop is not None:
            self._on_stop(trial)

    def pause_trial(self, trial: Trial) -> None:
        self.actions.append(("pause", trial.trial_id))
        trial.status = Status.PAUSED

    def resume_trial(self, trial: Trial, *, config: dict | None = None, checkpoint: str | None = None) -> None:
        self.actions.append(("resume", trial.trial_id))
        trial.status = Status.PENDING  # ready to run again: choose_trial_to_run may now start it


def make_trials(n: int, prefix: str = "t") -> list[Trial]:
    return [Trial(f"{prefix}{i}", {"x": i}, index=i, status=Status.RUNNING) for i in range(n)]


async def started(scheduler: Scheduler, trials: Sequence[Trial]) -> RecordingControl:
    """Attach the scheduler to a recording control and add the trials, as the controller does."""
    control = RecordingControl(trials)
    await scheduler.start(control)
    for trial in trials:
        scheduler.on_trial_add(trial)
    return control


async def decide(scheduler: Scheduler, trial: Trial, result: dict[str, Any]) -> Any:
    """on_trial_result, awaited when the scheduler answers with an awaitable (coroutine form)."""
    trial.last_result = result
    decision = scheduler.on_trial_result(trial, result)
    if inspect.isawaitable(decision):
        decision = await decision
    return decision


class Simulation:
    """Plays trials whose metric is a fixed quality, like the controller would.

    New trials are created only when a slot is free (as a lazy controller does); running trials
    report one iteration each in turn; decisions and control actions change their status. A
    paused trial resumes at the iteration it paused at (its checkpoint).
    """

    def __init__(self, scheduler: Scheduler, qualities: Sequence[float], *, slots: int, metric: str = "acc") -> None:
        self.scheduler, self.qualities, self.slots, self.metric = scheduler, list(qualities), slots, metric
        self.trials: list[Trial] = []
        self.control = RecordingControl(self.trials, on_stop=self._ended)
        self.decisions: list[tuple[str, int, Any]] = []
        self.iteration: dict[str, int] = {}
        self.searcher_finished = False

    def _ended(self, trial: Trial) -> None:
        self.scheduler.on_trial_complete(trial, trial.last_result)

    async def run(self, max_steps: int = 100_000) -> None:
        await self.scheduler.start(self.control)
        for _ in range(max_steps):
            await self._fill_slots()
            running = [t for t in self.trials if t.status is Status.RUNNING]
            if not running:
                break
            for trial in running:
                if trial.status is Status.RUNNING:
                    await self._step(trial)
        await self.scheduler.close()

    async def _fill_slots(self) -> None:
        while sum(t.status is Status.RUNNING for t in self.trials) < self.slots:
            if not any(t.status is Status.PENDING for t in self.trials):
                await self._add_trial()
            candidates = [t for t in self.trials if t.status in (Status.PENDING, Status.PAUSED)]
            chosen = self.scheduler.choose_trial_to_run(candidates)
            if chosen is None:
                return
            chosen.status = Status.RUNNING

    async def _add_trial(self) -> None:
        if len(self.trials) < len(self.qualities):
            trial = Trial(f"t{len(self.trials)}", {"q": self.qualities[len(self.trials)]}, index=len(self.trials))
            self.trials.append(trial)
            self.iteration[trial.trial_id] = 0
            self.scheduler.on_trial_add(trial)
        elif not self.searcher_finished:
            self.searcher_finished = True  # told once, as the controller does
            outcome = getattr(self.scheduler, "on_searcher_finished", lambda: None)()
            if inspect.isawaitable(outcome):
                await outcome

    async def _step(self, trial: Trial) -> None:
        self.iteration[trial.trial_id] += 1
        it = self.iteration[trial.trial_id]
        result = {self.metric: trial.config["q"], "training_iteration": it}
        decision = await decide(self.scheduler, trial, result)
        self.decisions.append((trial.trial_id, it, decision))
        if trial.status.is_finished:
            return
        if decision is STOP:
            trial.status = Status.TERMINATED
            self.scheduler.on_trial_complete(trial, result)
        elif decision is PAUSE:
            trial.status = Status.PAUSED

    def reached(self, iteration: int) -> list[str]:
        """Ids of the trials that ran to at least `iteration`."""
        return [tid for tid, it in self.iteration.items() if it >= iteration]

    def best(self, n: int) -> list[str]:
        ranked = sorted(self.trials, key=lambda t: -t.config["q"])
        return sorted(t.trial_id for t in ranked[:n])
