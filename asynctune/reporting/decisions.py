"""The decisions log: every STOP, PAUSE, MUTATE and RESUME, one JSON line each, in decisions.jsonl.

Results say how a trial learned; this file says what the scheduler did to it and when, so a
finished experiment can be read back (plots mark where each trial was stopped, paused,
promoted or cloned). `asynctune.run()` always installs it.

    {"time": 1764142800.1, "trial_id": "trial_00003", "decision": "STOP", "detail": "rung 4",
     "iteration": 4, "time_total_s": 2.5}
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import IO, Any

from ..safe_files import open_private
from ..storage import dumps, read_jsonl
from ..trial import Trial
from .callback import Callback

DECISIONS_FILE = "decisions.jsonl"


class DecisionLog(Callback):
    """Appends each decision on a trial to `<experiment_dir>/decisions.jsonl`, flushed at once."""

    def __init__(self) -> None:
        self.path: str | None = None
        self._file: IO[str] | None = None

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.path = os.path.join(experiment_dir, DECISIONS_FILE)

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = open_private(self.path, "a")
        result = trial.last_result or {}
        record = {"time": time.time(), "trial_id": trial.trial_id, "decision": decision, "detail": detail,
                  "iteration": trial.iteration, "time_total_s": result.get("time_total_s")}
        self._file.write(dumps(record) + "\n")
        self._file.flush()

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_decisions(experiment_dir: str) -> list[dict[str, Any]]:
    """Every decision logged in an experiment, in order; [] if none was (or the file is missing)."""
    return read_jsonl(os.path.join(experiment_dir, DECISIONS_FILE))
