"""Asynchronous successive halving, ASHA (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020), in its two forms: stopping and promotion."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.objectives import as_float
from ...core.trial import CONTINUE, PAUSE, STOP, Decision, Status, Trial
from .rungs import (
    SortedValues, check_bool, check_positive, check_reduction_factor, check_time_attr, require_metric_and_mode,
    rung_milestones, score,
)
from ..base import Scheduler, scheduler_seed

VARIANTS = ("stopping", "promotion")


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving: compare each trial at rungs r, r*eta, r*eta^2, ... < max_t.

    Li et al. (2020) run successive halving without waiting for a rung to fill: a trial's fate
    at a rung is decided against the trials that have reached it so far.

    * `variant="stopping"` (Ray Tune's AsyncHyperBand): a trial reaching a rung continues only
      if its result is at least the (1 - 1/eta) quantile of the results recorded there before
      it, i.e. it is in the top 1/eta so far; otherwise it stops.
    * `variant="promotion"` (the paper's Algorithm 2): a trial reaching a rung pauses there
      (checkpoints, frees its worker). Whenever a worker is free, the best paused trial of the
      highest rung that is in the top 1/eta of everything recorded at its rung is promoted:
      resumed from its checkpoint to run to the next rung; if none is promotable, a new trial
      starts. A trial that is promotable the moment it reaches a rung (and no paused trial
      above it is) simply continues.

    Trials stop at `max_t`. With several `brackets`, bracket s starts its rungs at
    grace_period * eta^s, and each new trial joins a bracket at random, weighted towards
    brackets with more rungs (as in Ray Tune). Rungs keep their results sorted, so a decision
    costs O(log n) in the number of trials.

    Example:
        >>> ASHAScheduler(metric="loss", mode="min", max_t=81, grace_period=1, reduction_factor=3)

    Args:
        time_attr: The result field that measures training progress (the resource r).
        metric: The result field to optimise; run()'s metric when None.
        mode: "min" or "max"; run()'s mode when None.
        max_t: Every trial stops when `time_attr` reaches this (R in the paper).
        grace_period: The first rung: no trial is compared before this (r in the paper).
        reduction_factor: Keep the top 1/reduction_factor at each rung (eta in the paper).
        brackets: How many brackets (s = 0 .. brackets - 1, the early-stopping rate).
        stop_last_trials: False lets trials that pass the last rung train on past max_t, until
            their own end or run()'s `stop=` (as Ray Tune's argument of that name).
        variant: "stopping" or "promotion" (see above).
        seed: Seeds the choice of bracket for each trial.
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: float = 100, grace_period: float = 1,
                 reduction_factor: float = 4, brackets: int = 1, stop_last_trials: bool = True, *,
                 variant: str = "stopping", seed: int | None = None) -> None:
        check_time_attr(time_attr)
        check_positive("max_t", max_t)
        check_positive("grace_period", grace_period)
        if grace_period > max_t:
            raise ValueError(f"grace_period must be <= max_t, got {grace_period=} > {max_t=}")
        check_reduction_factor(reduction_factor)
        if isinstance(brackets, bool) or not isinstance(brackets, int) or brackets < 1:
            raise ValueError(f"brackets must be an integer >= 1, got {brackets=}")
        check_bool("stop_last_trials", stop_last_trials)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant=}")
        super().__init__(metric, mode)
        self.time_attr, self.max_t, self.grace_period = time_attr, max_t, grace_period
        self.reduction_factor, self.brackets, self.variant = reduction_factor, brackets, variant
        self.stop_last_trials = stop_last_trials
        self.seed = seed
        self._brackets = [
            [_Rung(m) for m in rung_milestones(grace_period, reduction_factor, max_t, s)] for s in range(brackets)
        ]
        self._bracket_cumulative = list(np.cumsum(_bracket_probabilities([len(rungs) for rungs in self._brackets])))
        self._rng = np.random.default_rng(seed)
        self._bracket_of: dict[str, int] = {}
        self._next_rung: dict[str, int] = {}  # promotion: the rung a trial may run to
        self._waiting_at: dict[str, int] = {}  # promotion: the rung a trial waits at to be promoted
        self._failures_when_waiting: dict[str, int] = {}  # promotion: its num_failures when it began to wait
        self._searcher_finished = False  # promotion: no trial will be added (rungs can only shrink)

    def set_seed(self, seed: int | None) -> None:
        if self.seed is None and seed is not None:
            self.seed = seed
            self._rng = np.random.default_rng(scheduler_seed(seed))

    def validate(self) -> None:
        require_metric_and_mode(type(self).__name__, self.metric, self.mode)

    def synchronous_results(self, trial: Trial) -> frozenset[int] | None:
        """Rung boundaries and max_t wait for their decision; the results between them, which it
        always continues, do not. Counted in another time_attr, every result waits."""
        if self.time_attr != "training_iteration":
            return None
        levels = {level for rungs in self._brackets for level in (r.milestone for r in rungs)}
        return frozenset(math.ceil(level) for level in (*levels, self.max_t))

    def on_trial_add(self, trial: Trial) -> None:
        draw = self._rng.random() if len(self._brackets) > 1 else 0.0
        self._bracket_of[trial.trial_id] = min(bisect_right(self._bracket_cumulative, draw), len(self._brackets) - 1)
        self._next_rung[trial.trial_id] = 0

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> Decision:
        time = as_float(result.get(self.time_attr))
        if time is None:
            return CONTINUE
        if time >= self.max_t and self.stop_last_trials:
            return STOP
        value = self._score(result)
        if value is None:
            return CONTINUE
        if trial.trial_id not in self._bracket_of:
            self.on_trial_add(trial)
        if self.variant == "stopping":
            return self._stop_unless_in_top(trial, time, value)
        return self._pause_at_rung(trial, time, value)

    def _score(self, result: dict[str, Any]) -> Any:
        """What a rung records for the result (higher is better); None while it lacks the metric."""
        return score(result[self.metric], self.mode) if self.metric in result else None

    # Stopping ------------------------------------------------------------------------------------

    def _stop_unless_in_top(self, trial: Trial, time: float, value: float) -> Decision:
        """Record the result at the highest rung reached; stop the trial if it is below the cutoff."""
        for rung in reversed(self._rungs(trial)):
            if time < rung.milestone:
                continue
            if trial.trial_id in rung.recorded:
                break  # judged at this rung already
            in_top = self._in_top(rung, value)
            rung.record(trial.trial_id, value)
            if not in_top:
                return STOP
            break
        return CONTINUE

    def _in_top(self, rung: _Rung, value: Any) -> bool:
        """Is `value` in the top 1/eta of the rung's results so far (the first one always is)?"""
        cutoff = _cutoff(rung, self.reduction_factor)
        return cutoff is None or value >= cutoff

    # Promotion -----------------------------------------------------------------------------------

    def _pause_at_rung(self, trial: Trial, time: float, value: float) -> Decision:
        waiting = self._waiting_at.get(trial.trial_id)
        if waiting is not None and trial.num_failures > self._failures_when_waiting.get(trial.trial_id, 0):
            # Retried after failing as it paused at its rung: not promoted, it waits there again
            # once it is back at the rung (its result there stands).
            if time < self._rungs(trial)[waiting].milestone:
                return CONTINUE
            self._failures_when_waiting[trial.trial_id] = trial.num_failures
            if self._best_promotable(lambda t: t is trial or t.status is Status.PAUSED) is trial:
                self._note_promotion(trial)
                return CONTINUE
            return PAUSE
        self._note_promotion(trial)
        rungs = self._rungs(trial)
        k = self._next_rung[trial.trial_id]
        if k >= len(rungs) or time < rungs[k].milestone:
            return CONTINUE  # still running towards its rung (or past the last one, towards max_t)
        while k + 1 < len(rungs) and time >= rungs[k + 1].milestone:
            k += 1  # the trial reports sparsely and passed several rungs: judge it at the highest
        rungs[k].record(trial.trial_id, value)
        rungs[k].add_candidate(trial, value)
        self._waiting_at[trial.trial_id] = k
        self._failures_when_waiting[trial.trial_id] = trial.num_failures
        if self._best_promotable(lambda t: t is trial or t.status is Status.PAUSED) is trial:
            self._note_promotion(trial)  # the free worker's next job is this very trial: no pause
            return CONTINUE
        return PAUSE

    def _best_promotable(self, eligible: Callable[[Trial], bool], *, at_least_one: bool = False) -> Trial | None:
        """get_job() of the paper: the best promotable trial of the highest rung, if any.
        `at_least_one`: a rung's top 1/eta holds at least one trial (rungs that cannot fill)."""
        best: tuple[float, Trial] | None = None
        for rungs in self._brackets:
            for rung in reversed(rungs):
                candidate = self._promotable(rung, eligible, at_least_one)
                if candidate is not None:
                    if best is None or rung.milestone > best[0]:
                        best = (rung.milestone, candidate)
                    break
        return best[1] if best else None

    def _promotable(self, rung: _Rung, eligible: Callable[[Trial], bool], at_least_one: bool = False) -> Trial | None:
        return _promotable(rung, _top_size(len(rung.values), self.reduction_factor, at_least_one), eligible)

    def _note_promotion(self, trial: Trial) -> None:
        """A trial that waited at rung k and runs again was promoted: it may run to rung k + 1."""
        k = self._waiting_at.pop(trial.trial_id, None)
        if k is not None:
            self._rungs(trial)[k].remove_candidate(trial)
            self._next_rung[trial.trial_id] = k + 1

    def choose_trial_to_run(self, candidates: Sequence[Trial]) -> Trial | None:
        """Promotion: the best promotable paused trial, else a new one. Asking twice changes nothing:
        the promotion counts once the trial runs again.

        Once no trial runs and none will be added, no rung can grow: a rung whose top floor(n/eta)
        is nobody (n < eta, say 8 trials with eta=3 leave 2 at the second rung) promotes its best
        trial, so the best trial still reaches max_t (as a HyperBand bracket that cannot fill)."""
        if self.variant == "promotion":
            waiting = set(candidates)

            def eligible(t: Trial) -> bool:
                return t in waiting and t.status is Status.PAUSED

            promotable = self._best_promotable(eligible)
            if promotable is not None:
                return promotable
            pending = next((t for t in candidates if t.status is Status.PENDING), None)
            if pending is not None or not self._rungs_are_final():
                return pending
            return self._best_promotable(eligible, at_least_one=True)
        return super().choose_trial_to_run(candidates)

    def on_searcher_finished(self) -> None:
        self._searcher_finished = True

    def _rungs_are_final(self) -> bool:
        """No trial runs and none will be added: nothing can reach a rung any more but by promotion."""
        trials = self.control.trials if self.control is not None else ()
        return self._searcher_finished and not any(t.status is Status.RUNNING for t in trials)

    def on_trial_complete(self, trial: Trial, result: dict[str, Any] | None) -> None:
        self._forget_candidate(trial)

    def on_trial_error(self, trial: Trial) -> None:
        self._forget_candidate(trial)

    def _forget_candidate(self, trial: Trial) -> None:
        k = self._waiting_at.pop(trial.trial_id, None)
        if k is not None:
            self._rungs(trial)[k].remove_candidate(trial)

    def _rungs(self, trial: Trial) -> list[_Rung]:
        return self._brackets[self._bracket_of[trial.trial_id]]

    def rung_records(self) -> list[list[dict[str, float]]]:
        """For each bracket and rung (lowest first): the score recorded for each trial id.

        Scores are "higher is better" (negated for mode="min"); for inspection and tests.
        """
        return [[dict(rung.recorded) for rung in rungs] for rungs in self._brackets]


AsyncHyperBandScheduler = ASHAScheduler


@dataclass
class _Rung:
    """One rung: the results recorded there (sorted) and, in promotion, the trials paused there."""

    milestone: float
    recorded: dict[str, float] = field(default_factory=dict)  # trial id -> score
    values: SortedValues = field(default_factory=SortedValues)
    candidates: dict[str, tuple[float, int]] = field(default_factory=dict)  # paused here, not promoted
    _ranked: list[tuple[float, int]] = field(default_factory=list)  # candidates' keys, sorted
    _trial_of: dict[tuple[float, int], Trial] = field(default_factory=dict)
    _arrivals: int = 0

    def record(self, trial_id: str, value: float) -> None:
        self.recorded[trial_id] = value
        self.values.add(value)

    def add_candidate(self, trial: Trial, value: float) -> None:
        self._arrivals += 1
        key = (value, -self._arrivals)  # on a tie, the trial that arrived first ranks higher
        self.candidates[trial.trial_id] = key
        insort(self._ranked, key)
        self._trial_of[key] = trial

    def remove_candidate(self, trial: Trial) -> None:
        key = self.candidates.pop(trial.trial_id)
        del self._ranked[bisect_left(self._ranked, key)]
        del self._trial_of[key]

    def candidate(self, trial_id: str) -> Trial | None:
        """The trial if it waits at this rung to be promoted."""
        key = self.candidates.get(trial_id)
        return None if key is None else self._trial_of[key]

    def candidates_best_first(self) -> Iterator[tuple[float, Trial]]:
        for key in reversed(self._ranked):
            yield key[0], self._trial_of[key]


def _cutoff(rung: _Rung, reduction_factor: float) -> float | None:
    """The score a trial must reach to be in the top 1/eta of the rung so far (None: no one yet).

    Diverged results (NaN, inf: the worst score) are left out, as Ray Tune's nanpercentile
    does: counted, they would pull the cutoff down to -inf and let every trial continue."""
    return rung.values.quantile_of_finite(1 - 1 / reduction_factor)


def _top_size(n: int, reduction_factor: float, at_least_one: bool) -> int:
    """How many of a rung's n trials are its top 1/eta: floor(n/eta), or at least 1 if asked."""
    top = math.floor(n / reduction_factor)
    return max(top, 1) if at_least_one else top


def _promotable(rung: _Rung, top: int, eligible: Callable[[Trial], bool]) -> Trial | None:
    """The rung's best eligible waiting trial if it is in the `top` of all recorded there.

    Waiting trials that are not eligible were chosen to run and have not reported yet (at most
    one per worker): they are skipped, and still rank above the rest.
    """
    for value, trial in rung.candidates_best_first():
        if rung.values.count_above(value) >= top:
            return None
        if eligible(trial):
            return trial
    return None


def _bracket_probabilities(rung_counts: list[int]) -> np.ndarray:
    """Ray Tune's weighting: a bracket with one more rung is e times as likely."""
    weights = np.exp(np.array(rung_counts, dtype=float) - max(rung_counts))
    return weights / weights.sum()
