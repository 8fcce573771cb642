"""Synchronous Hyperband (Li et al., "Hyperband: A Novel Bandit-Based Approach to
Hyperparameter Optimization", JMLR 2017), written as a coroutine per bracket."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from ...core.compat import TaskGroup
from ...core.objectives import as_float
from ...core.trial import Trial
from .rungs import check_bool, check_positive, check_reduction_factor, check_time_attr, require_metric_and_mode, score
from ..base import CoroutineScheduler, TrialAdded, TrialEnded, TrialResult

BRACKET_ORDERS = ("aggressive_first", "gentle_first")


class HyperBandScheduler(CoroutineScheduler):
    """Hyperband: successive halving in brackets that trade the number of trials for their budget.

    With R = `max_t` and eta = `reduction_factor`, s_max = floor(log_eta(R)). Bracket s takes
    n = ceil((s_max + 1) / (s + 1) * eta^s) trials and gives each r = R * eta^-s to start with.
    Then, as in the paper's inner loop, for i = 0 .. s: every trial of the bracket runs to
    r_i = r * eta^i and *pauses* there (checkpoints, frees its worker) until the whole rung is
    in; then the top floor(n_i / eta) resume from their checkpoints towards r_(i+1) and the
    rest stop. By default brackets fill in the order s_max, s_max - 1, ..., 0 (the most
    aggressive first, as the paper's outer loop) and then start over; `bracket_order=
    "gentle_first"` fills them 0, 1, ..., s_max as Ray Tune does. With a small num_samples only
    the first brackets run, so the order matters. Several brackets run at the same time (a new
    one starts as soon as the last one is full).

    Each bracket is one coroutine (`_successive_halving`) that reads like Algorithm 1: "wait
    until the rung is full, then keep the best 1/eta". `run()` deals each event to the bracket
    of its trial only, so a result costs O(1) however many brackets are running.

    A bracket that cannot fill (the searcher ran out of trials: `num_samples` is smaller than
    the sum of the brackets' n) halves the trials it has, keeping at least one.

    Example:
        >>> HyperBandScheduler(metric="loss", mode="min", max_t=81, reduction_factor=3)

    Args:
        time_attr: The result field that measures training progress (the resource r).
        metric: The result field to optimise; run()'s metric when None.
        mode: "min" or "max"; run()'s mode when None.
        max_t: The most resource a trial gets (R in the paper); trials stop there.
        reduction_factor: Keep the top 1/reduction_factor at each rung (eta in the paper).
        stop_last_trials: False lets a bracket's survivors train on past max_t, until their own
            end or run()'s `stop=` (as Ray Tune's argument of that name).
        bracket_order: "aggressive_first" (s = s_max first: many trials on a small budget, the
            paper's order) or "gentle_first" (s = 0 first: few trials, each to max_t; Ray Tune's).
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 81, reduction_factor: float = 3,
                 stop_last_trials: bool = True, *, bracket_order: str = "aggressive_first") -> None:
        check_time_attr(time_attr)
        check_positive("max_t", max_t)
        check_reduction_factor(reduction_factor)
        check_bool("stop_last_trials", stop_last_trials)
        if bracket_order not in BRACKET_ORDERS:
            raise ValueError(f"bracket_order must be one of {BRACKET_ORDERS}, got {bracket_order=}")
        super().__init__(metric, mode)
        self.time_attr, self.max_t, self.reduction_factor = time_attr, max_t, reduction_factor
        self.bracket_order, self.stop_last_trials = bracket_order, stop_last_trials
        self.s_max = _s_max(max_t, reduction_factor)
        self.brackets: list[_Bracket] = []  # every bracket started so far, in order
        self._out_of_trials = False

    def validate(self) -> None:
        require_metric_and_mode(type(self).__name__, self.metric, self.mode)

    def bracket_sizes(self) -> list[tuple[int, float]]:
        """(n, r) of each bracket in the order they fill (s = s_max .. 0, or 0 .. s_max for
        bracket_order="gentle_first"): how many trials and how much resource to start with."""
        order = range(self.s_max + 1) if self.bracket_order == "gentle_first" else range(self.s_max, -1, -1)
        return [_bracket_size(s, self.s_max, self.max_t, self.reduction_factor) for s in order]

    # The algorithm -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Deal the events out: each trial joins the open bracket, each bracket gets its trials' events."""
        bracket_of: dict[Trial, _Bracket] = {}
        async with TaskGroup() as brackets_running:
            async for event in self.events():
                if isinstance(event, TrialAdded):
                    if not self.brackets or self.brackets[-1].is_full or self.brackets[-1].is_closed:
                        self.brackets.append(self._next_bracket())
                        brackets_running.create_task(self._successive_halving(self.brackets[-1]))
                    self.brackets[-1].add(event.trial)
                    bracket_of[event.trial] = self.brackets[-1]
                elif isinstance(event, _OutOfTrials):
                    if self.brackets:
                        if event.stalled:
                            self.brackets[-1].is_closed = True  # the next trial starts a new bracket
                        await self.brackets[-1].inbox.deliver(event)  # only the newest can be short
                elif event.trial in bracket_of:
                    await bracket_of[event.trial].inbox.deliver(event)
                    if isinstance(event, TrialEnded):
                        del bracket_of[event.trial]
                elif isinstance(event, TrialResult) and self._time(event.result) >= self.max_t \
                        and self.stop_last_trials:
                    self.stop(event.trial)  # in no bracket (added before start): R still holds

    async def _successive_halving(self, bracket: _Bracket) -> None:
        """One bracket: for i = 0 .. s-1, run every trial to r_i, keep the top floor(n_i / eta)."""
        try:
            last: TrialResult | None = None
            for i in range(bracket.s):
                r_i = bracket.r * self.reduction_factor ** i
                last = await self._run_rung(bracket, r_i, carried=last)
                bracket.is_closed = True  # no trial joins a bracket that has started halving
                n_i = len(bracket.scores)
                keep = _top_k(bracket.scores, max(1, math.floor(n_i / self.reduction_factor)))
                for trial in bracket.scores:
                    if trial not in keep:
                        self.stop(trial)
                    elif last is None or trial is not last.trial:
                        self.resume(trial)  # from its checkpoint, towards r_(i+1)
                if last is not None and last.trial not in keep:
                    last = None
                bracket.next_rung(keep)
            # The last rung is R itself: the survivors train to max_t and stop there.
            if self.stop_last_trials:
                await self._run_rung(bracket, self.max_t, carried=last, final=True)
        finally:
            bracket.inbox.close()

    async def _run_rung(self, bracket: _Bracket, r_i: float, *, carried: TrialResult | None = None,
                        final: bool = False) -> TrialResult | None:
        """Pause each trial when it reaches r_i (stop it, at R); return once all have, or have ended.

        `carried` is the result that completed the previous rung: it may reach this one too.
        Returns the result that completed this rung: its trial was not paused (it is still
        running, and just continues if it is kept). None if an ending completed the rung.
        """
        event: Any = carried
        while event is not None or not self._rung_complete(bracket):
            if event is None:
                event = await bracket.inbox.get()
            if isinstance(event, TrialResult) and event.trial in bracket.alive:
                trial, result = event.trial, event.result
                if self._time(result) >= r_i and trial not in bracket.scores and self.metric in result:
                    bracket.scores[trial] = score(result[self.metric], self.mode)
                    if final:
                        self.stop(trial)
                    elif self._rung_complete(bracket):
                        return event
                    else:
                        self.pause(trial)  # checkpoint, free the worker, wait for the rest of the rung
                elif trial in bracket.scores and not final and self._time(result) >= r_i:
                    # It waits at this rung, yet runs: retried after failing as it paused. It
                    # waits again (its score at the rung stands).
                    self.pause(trial)
            elif isinstance(event, TrialEnded) and event.trial in bracket.alive:
                bracket.drop(event.trial)
            event = None
        return None

    def _next_bracket(self) -> _Bracket:
        k = len(self.brackets) % (self.s_max + 1)
        s = k if self.bracket_order == "gentle_first" else self.s_max - k  # and then over again
        n, r = _bracket_size(s, self.s_max, self.max_t, self.reduction_factor)
        return _Bracket(s=s, n=n, r=r)

    def _rung_complete(self, bracket: _Bracket) -> bool:
        closed = bracket.is_closed or bracket.is_full or self._out_of_trials
        return closed and len(bracket.scores) == len(bracket.alive)

    def _time(self, result: dict[str, Any]) -> float:
        time = as_float(result.get(self.time_attr))
        return -math.inf if time is None else time

    # Running out of trials -----------------------------------------------------------------------

    def on_searcher_finished(self) -> Awaitable[None]:
        """No trial will be added any more: a bracket that is not full closes with what it has.

        The controller awaits this, so the rungs it completes have promoted and stopped their
        trials before it looks for trials to run.
        """
        self._out_of_trials = True
        self._publish(_OutOfTrials())
        return self._wait_settled()

    def on_searcher_stalled(self) -> Awaitable[None] | None:
        """The searcher holds back (a ConcurrencyLimiter counts this bracket's paused trials) and
        nothing runs: the bracket being filled closes with the trials it has, as Ray's HyperBand
        processes a bracket whose trials are all paused; later trials start a new bracket."""
        newest = self.brackets[-1] if self.brackets else None
        if newest is None or newest.is_full or newest.is_closed:
            return None
        self._publish(_OutOfTrials(stalled=True))
        return self._wait_settled()


@dataclass(eq=False)
class _Bracket:
    s: int
    n: int
    r: float
    trials: list[Trial] = field(default_factory=list)  # every trial that joined, in order
    alive: dict[Trial, None] = field(default_factory=dict)  # those still in the race (ordered set)
    scores: dict[Trial, float] = field(default_factory=dict)  # results at the current rung
    is_closed: bool = False
    inbox: _Inbox = field(default_factory=lambda: _Inbox())

    @property
    def is_full(self) -> bool:
        return len(self.trials) >= self.n

    def add(self, trial: Trial) -> None:
        self.trials.append(trial)
        self.alive[trial] = None

    def drop(self, trial: Trial) -> None:
        del self.alive[trial]
        self.scores.pop(trial, None)

    def next_rung(self, keep: set[Trial]) -> None:
        self.alive = {trial: None for trial in self.alive if trial in keep}
        self.scores.clear()


@dataclass(frozen=True)
class _OutOfTrials:
    """Published when no more trials will join: brackets that are not full close as they are.
    `stalled`: none will join for now (on_searcher_stalled): only the newest bracket closes."""

    stalled: bool = False


class _Inbox:
    """Hands a bracket's coroutine its events one at a time.

    `deliver` returns once the coroutine has handled the event (it asks for the next one, or
    ends), so whatever it decided is in place before the scheduler counts as settled.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._holding = False
        self.closed = False

    async def deliver(self, event: Any) -> None:
        if self.closed:
            return
        self._queue.put_nowait(event)
        await self._queue.join()

    async def get(self) -> Any:
        self._done_with_last()
        event = await self._queue.get()
        self._holding = True
        return event

    def close(self) -> None:
        self.closed = True
        self._done_with_last()
        while not self._queue.empty():  # a delivery that raced with the end
            self._queue.get_nowait()
            self._queue.task_done()

    def _done_with_last(self) -> None:
        if self._holding:
            self._holding = False
            self._queue.task_done()


def _top_k(scores: dict[Trial, float], k: int) -> set[Trial]:
    """The k best trials; on a tie, the one that reached the rung first (sorted() is stable)."""
    return set(sorted(scores, key=lambda trial: -scores[trial])[:k])


def _s_max(max_t: float, eta: float) -> int:
    """floor(log_eta(max_t)), exact for powers (log() alone gives 4.999... for log_3(243))."""
    s = 0
    while eta ** (s + 1) <= max_t * (1 + 1e-12):
        s += 1
    return s


def _bracket_size(s: int, s_max: int, max_t: float, eta: float) -> tuple[int, float]:
    n = math.ceil((s_max + 1) / (s + 1) * eta ** s - 1e-9)
    return n, max_t * eta ** -s
