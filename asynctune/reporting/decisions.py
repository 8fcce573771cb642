"""The decisions log: every STOP, PAUSE, MUTATE and RESUME, one JSON line each, in decisions.jsonl.

Results say how a trial learned; this file says what the scheduler did to it and when, so a
finished experiment can be read back (plots mark where each trial was stopped, paused,
promoted or cloned). `asynctune.run()` always installs it.

    {"time": 1764142800.1, "trial_id": "trial_00003", "decision": "STOP", "detail": "rung 4",
     "iteration": 4, "time_total_s": 2.5, "early": true}

A STOP has `"early": false` when the trial had reached the scheduler's own end (ASHA's or
HyperBand's `max_t`): that trial finished, it was not stopped early. The trial's status says so
itself (Status.FINISHED or EARLY_STOPPED); `refine_terminated()` reads it from this file for a
directory an older asynctune wrote, where both were "TERMINATED".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO, Any

from ..store.private_files import open_private
from ..store.layout import dumps, read_jsonl
from ..core.objectives import as_float
from ..core.trial import Status, Trial
from ..store.names import DECISIONS_FILE, decisions_file  # noqa: F401 (DECISIONS_FILE: for readers)
from ..store.paths import checked
from .callback import Callback



def stopped_early(scheduler: Any, trial: Trial, decision: str) -> bool | None:
    """For a STOP: False if the trial had reached the scheduler's `max_t` (on its `time_attr`),
    True if it was stopped before; None for other decisions."""
    if decision != "STOP":
        return None
    max_t = getattr(scheduler, "max_t", None)
    reached = as_float((trial.last_result or {}).get(getattr(scheduler, "time_attr", "training_iteration")))
    return not (isinstance(max_t, (int, float)) and reached is not None and reached >= max_t)


def refine_terminated(trials: Sequence[Trial], summaries: Sequence[Any], decisions: Sequence[dict[str, Any]]) -> None:
    """Trials an older asynctune recorded as "TERMINATED" (read as FINISHED): EARLY_STOPPED where
    the scheduler's last decision on one stopped it early or paused it, as that version showed."""
    old = {s.get("trial_id") for s in summaries if isinstance(s, dict) and s.get("status") == "TERMINATED"}
    last = last_decisions(decisions)
    for trial in trials:
        decision = last.get(trial.trial_id) or {}
        if trial.trial_id in old and (decision.get("decision") == "PAUSE" or (
                decision.get("decision") == "STOP" and decision.get("early") is not False)):
            trial.status = Status.EARLY_STOPPED


def last_decisions(decisions: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each trial's last decision, from `read_decisions()`."""
    return {d["trial_id"]: d for d in decisions if d.get("trial_id")}


class DecisionLog(Callback):
    """Appends each decision on a trial to `<experiment_dir>/decisions.jsonl`, flushed at once.

    Args:
        scheduler: The experiment's scheduler, to tell a STOP at its `max_t` from an early one.
        flush_each: False: flushed on the controller's tick instead (a batched, simulated run).
    """

    def __init__(self, *, scheduler: Any = None, flush_each: bool = True) -> None:
        self.scheduler = scheduler
        self.flush_each = flush_each
        self.path: str | None = None
        self._file: IO[str] | None = None

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.path = decisions_file(experiment_dir)

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = open_private(self.path, "a")
        result = trial.last_result or {}
        record = {"time": time.time(), "trial_id": trial.trial_id, "decision": decision, "detail": detail,
                  "iteration": trial.iteration, "time_total_s": result.get("time_total_s")}
        early = stopped_early(self.scheduler, trial, decision)
        if early is not None:
            record["early"] = early
        self._file.write(dumps(record) + "\n")
        if self.flush_each:
            self._file.flush()

    def on_tick(self, trials: Sequence[Trial]) -> None:
        if self._file is not None and not self.flush_each:
            self._file.flush()

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_decisions(experiment_dir: str) -> list[dict[str, Any]]:
    """Every decision logged in an experiment, in order; [] if none was (or the file is missing)."""
    return read_jsonl(checked(experiment_dir, decisions_file(experiment_dir)))
