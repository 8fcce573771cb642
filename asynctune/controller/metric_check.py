"""Is the metric reported, as a number? Checked on the first results, as Ray Tune does, not after
the whole run.

The rule: a result without a metric that is ranked by (run()'s, any of run()'s several metrics,
or a scheduler's or searcher's own), while no result of the experiment so far has held it (in any session: the results of
earlier sessions count), ends the experiment with a ValueError naming the keys reported. A
metric reported only on some results (every other step, at validation) is fine once seen. A
metric that is not a real number (a Decimal, a datetime, a string, a tensor) ends it the same
way, at the first result that holds one: it would be recorded as its repr, and ranked as missing.
The keys of a `stop={...}` dict are checked the same way: a misspelt one would never stop a trial;
and so is a scheduler's `time_attr`: misspelt, no trial would ever reach a rung, a step or a
perturbation, and the scheduler would silently act as FIFO.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from typing import Any

from ..store.layout import read_jsonl, read_results
from ..store.names import rewound_file
from ..core.trial import AUTO_RESULT_KEYS, Trial
from ..worker.recordable import is_number


class MetricCheck:
    """The metrics not seen in any result yet, and the error for the first result without one."""

    def __init__(self, metric: str | list[str] | None, *owners: Any, stop_keys: Iterable[str] = ()) -> None:
        self._unseen: dict[str, str] = {}  # metric -> who ranks by it ("" for run())
        for name in _names(metric):  # with several objectives, every one is checked
            self._unseen[name] = ""
        for owner in owners:  # a scheduler or searcher given its own metric(s)=
            for own in _names(getattr(owner, "metric", None)):
                self._unseen.setdefault(own, type(owner).__name__)
        self._metrics = tuple(self._unseen)  # ranked by: each must be a real number
        for key in stop_keys:  # run(stop={key: threshold})
            self._unseen.setdefault(key, _STOP)
        for owner in owners:  # a scheduler counts progress in its time_attr
            time_attr = getattr(owner, "time_attr", None)
            if isinstance(time_attr, str):
                self._unseen.setdefault(time_attr, _TIME_ATTR + type(owner).__name__)

    def seen_before(self, trials: Iterable[Trial]) -> None:
        """Count what earlier sessions of a resumed experiment recorded (rewound results too)."""
        if not self._unseen:
            return
        for trial in trials:
            for result in [*read_results(trial.path), *read_jsonl(rewound_file(trial.path))]:
                for metric in [m for m in self._unseen if m in result]:
                    del self._unseen[metric]
                if not self._unseen:
                    return

    def missing(self, trial: Trial, result: dict[str, Any]) -> ValueError | None:
        """None while every metric was seen, as a number (the usual case, at once); else the error to end with."""
        for metric in self._metrics:
            value = result.get(metric)
            if value.__class__ is not float and value is not None and not is_number(value):
                return self._not_a_number(trial, metric, value)
        if not self._unseen:
            return None
        for metric in [m for m in self._unseen if m in result]:
            del self._unseen[metric]
        if not self._unseen:
            return None
        metric, owner = next(iter(self._unseen.items()))
        if owner == _STOP:
            return _stop_key_missing(trial, result, [m for m, o in self._unseen.items() if o == _STOP])
        if owner.startswith(_TIME_ATTR):
            return _time_attr_missing(trial, result, metric, owner.removeprefix(_TIME_ATTR))
        also = ", ".join(repr(m) for m, o in self._unseen.items() if o == owner and m != metric)  # several missing
        which = "first result" if trial.num_results <= 1 else f"result {trial.num_results}"
        user_keys = [k for k in result if k not in AUTO_RESULT_KEYS]
        auto_keys = [k for k in result if k in AUTO_RESULT_KEYS]
        report = f"{metric}=..." if metric.isidentifier() else f"**{{{metric!r}: ...}}"
        fix = f"pass {owner} the metric= your trainable reports" if owner else "pass the metric= your trainable reports"
        close = difflib.get_close_matches(metric, user_keys, n=1)  # a misspelt metric= is the usual cause
        guess = f"Did you mean metric={close[0]!r}? Else r" if close else "R"
        return ValueError(
            f"metric={metric!r}{f' (of {owner})' if owner else ''} is not in {trial.trial_id}'s {which}; it reported: "
            f"{', '.join(user_keys + auto_keys)}{f' (nor is {also})' if also else ''}. {guess}eport it with asynctune.report({report}) or {fix}"
            f"{'' if close else _ONLY_AT_SOME_STEPS}. "
            f"The experiment stopped; what was reported is kept in {os.path.dirname(trial.path)}")

    def _not_a_number(self, trial: Trial, metric: str, value: Any) -> ValueError:
        which = "first result" if trial.num_results <= 1 else f"result {trial.num_results}"
        kind = type(value)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        return ValueError(
            f"metric={metric!r} in {trial.trial_id}'s {which} is a {name} ({value!r}), not a real number: it "
            f"cannot be ranked. Report a number, e.g. asynctune.report({metric}=float(...)) (x.item() for a tensor). "
            f"The experiment stopped; what was reported is kept in {os.path.dirname(trial.path)}")


_STOP = "stop="  # the owner of a stop key
_TIME_ATTR = "time_attr of "  # + the scheduler's class name: the owner of a time_attr
# Seen once, a metric may be missing from later results; the first result must name it.
_ONLY_AT_SOME_STEPS = " (a metric measured only at some steps, e.g. validation every few epochs: report it as None at the others)"


def _stop_key_missing(trial: Trial, result: dict[str, Any], keys: list[str]) -> ValueError:
    reported = list(result)
    hints = []
    for key in keys:
        close = difflib.get_close_matches(key, reported, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    which = "first result" if trial.num_results <= 1 else f"result {trial.num_results}"
    return ValueError(
        f"stop= names {', '.join(hints)}, which is not in {trial.trial_id}'s {which}, so it would never stop a "
        f"trial; it reported: {', '.join(reported)}. Fix the key in stop=, or report it. "
        f"The experiment stopped; what was reported is kept in {os.path.dirname(trial.path)}")


def _time_attr_missing(trial: Trial, result: dict[str, Any], key: str, owner: str) -> ValueError:
    close = difflib.get_close_matches(key, list(result), n=1)
    which = "first result" if trial.num_results <= 1 else f"result {trial.num_results}"
    return ValueError(
        f"time_attr={key!r} (of {owner}) is not in {trial.trial_id}'s {which}, so no trial would ever reach "
        f"one of its rungs or steps and it would never act; it reported: {', '.join(result)}. "
        f"{f'Did you mean time_attr={close[0]!r}? ' if close else ''}Pass {owner} a time_attr= your trainable "
        f"reports (training_iteration and time_total_s always are), or report it. "
        f"The experiment stopped; what was reported is kept in {os.path.dirname(trial.path)}")


def _names(metric: Any) -> list[str]:
    if isinstance(metric, str):
        return [metric]
    return [m for m in metric if isinstance(m, str)] if isinstance(metric, (list, tuple)) else []
