"""The median stopping rule of Google Vizier (Golovin et al., 2017, section 3.2.2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...core.objectives import as_float
from ...core.trial import CONTINUE, PAUSE, STOP, Decision, Trial
from .rungs import (
    WORST, SortedValues, check_bool, check_non_negative, check_positive, check_time_attr, require_metric_and_mode,
    score,
)
from ..base import Scheduler


class MedianStoppingRule(Scheduler):
    """Stop a trial whose best result so far is worse than the median of the others' running averages.

    Vizier's rule (Golovin et al., "Google Vizier: A Service for Black-Box Optimization", KDD
    2017): trial i is stopped at step t if its best objective value up to t is strictly worse
    than the median of the running averages o_j(t) = mean(y_j(1..t)) of the other trials that
    have reached t. As in Ray Tune, running averages count results from `grace_period` on, and a
    trial needs `min_samples_required` other trials at step t before it can be judged.

    Steps are values of `time_attr`; results are compared at multiples of `time_bucket` (1 by
    default: each training iteration, or each second of `time_total_s`). A trial that jumps
    over some steps counts at those steps with the running average it had before the jump;
    several results in one step all count (its average there is the latest).
    Every step keeps its running averages sorted, so a decision costs O(log n) in the number
    of trials.

    Example:
        >>> MedianStoppingRule(metric="loss", mode="min", grace_period=5, min_samples_required=3)

    Args:
        time_attr: The result field that measures progress (training_iteration, time_total_s).
        metric: The result field to optimise; run()'s metric when None.
        mode: "min" or "max"; run()'s mode when None.
        grace_period: No trial is judged before this much `time_attr`, and results before it
            do not count towards running averages.
        min_samples_required: How many other trials must have reached the step for the median
            to be trusted; with fewer, the trial continues.
        hard_stop: True stops a losing trial; False pauses it instead (soft mode): it keeps its
            checkpoint, runs again once no new trial is waiting, and is not judged again.
        use_running_average: Compare the trial's own running average, not its best result
            (stricter: a noisy trial cannot survive on one lucky result).
        time_bucket: Width of the steps at which trials are compared, in `time_attr` units.
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, grace_period: float = 1, min_samples_required: int = 3,
                 hard_stop: bool = True, *, use_running_average: bool = False,
                 time_bucket: float = 1) -> None:
        check_time_attr(time_attr)
        check_non_negative("grace_period", grace_period)
        if isinstance(min_samples_required, bool) or not isinstance(min_samples_required, int) \
                or min_samples_required < 1:
            raise ValueError(f"min_samples_required must be an integer >= 1, got {min_samples_required=}")
        check_positive("time_bucket", time_bucket)
        check_bool("hard_stop", hard_stop)
        check_bool("use_running_average", use_running_average)
        super().__init__(metric, mode)
        self.time_attr = time_attr
        self.grace_period = grace_period
        self.min_samples_required = min_samples_required
        self.hard_stop = hard_stop
        self.use_running_average = use_running_average
        self.time_bucket = time_bucket
        self._steps: dict[int, SortedValues] = {}  # step -> running averages of trials that reached it
        self._trials: dict[str, _TrialRecord] = {}
        self._judged_out: set[str] = set()  # paused in soft mode: never judged again

    def validate(self) -> None:
        require_metric_and_mode(type(self).__name__, self.metric, self.mode)

    def synchronous_results(self, trial: Trial) -> frozenset[int] | None:
        """With hard_stop its only decision is STOP, which may land one step late; a pause
        (soft mode) waits, so a paused trial keeps the step it was judged at."""
        return frozenset() if self.hard_stop else None

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> Decision:
        if self.time_attr not in result or self.metric not in result:
            return CONTINUE
        if trial.trial_id in self._judged_out:
            return CONTINUE  # soft mode: a paused loser runs to its end once resumed (as in Ray Tune)
        time = as_float(result[self.time_attr])
        if time is None:
            return CONTINUE
        record = self._trials.setdefault(trial.trial_id, _TrialRecord())
        if time <= record.last_time:
            return CONTINUE  # a time seen before (the trial restarted from an older checkpoint)
        record.last_time = time
        step = self._step(time)
        self._add_running_average(record, before=step)
        self._withdraw_running_average(record, step)  # another result in the same step: it replaces it
        value = score(result[self.metric], self.mode)
        record.best = max(record.best, value)
        if time >= self.grace_period:
            record.total += value
            record.count += 1
        decision = self._decide(record, step) if time >= self.grace_period else CONTINUE
        self._add_running_average(record, before=step + 1)
        if decision is not CONTINUE:
            self._judged_out.add(trial.trial_id)
        return decision

    def _step(self, time: float) -> int:
        return math.floor(time / self.time_bucket)

    def _add_running_average(self, record: _TrialRecord, before: int) -> None:
        """Count the trial at each step it reached since its last result, up to `before`."""
        if record.count:
            for step in range(record.last_step + 1, before):
                self._steps.setdefault(step, SortedValues()).add(record.running_average)
                record.counted = record.running_average
            record.last_step = max(record.last_step, before - 1)
        elif before - 1 > record.last_step:
            record.last_step = before - 1

    def _withdraw_running_average(self, record: _TrialRecord, step: int) -> None:
        """Take back the average counted at `step` when the trial reports at that step again
        (steps shorter than time_bucket): every result counts, as in Vizier and Ray Tune."""
        if record.last_step == step:
            if record.counted is not None:
                self._steps[step].remove(record.counted)
            record.last_step, record.counted = step - 1, None

    def _decide(self, record: _TrialRecord, step: int) -> Decision:
        others = self._steps.get(step)
        if others is None or len(others) < self.min_samples_required:
            return CONTINUE
        own = record.running_average if self.use_running_average else record.best
        if own < others.median():  # strictly worse than the median
            return STOP if self.hard_stop else PAUSE
        return CONTINUE


@dataclass
class _TrialRecord:
    total: float = 0.0
    count: int = 0
    best: float = WORST
    last_step: int = -(2 ** 62)  # the last step this trial was counted at
    last_time: float = -math.inf  # its latest time_attr value
    counted: float | None = None  # the running average counted at last_step, if any

    @property
    def running_average(self) -> float:
        return self.total / self.count

