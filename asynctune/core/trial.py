"""Trials, their status, and the decisions a scheduler takes on them. Nothing here does I/O."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from .objectives import as_float, update_best


class Status(str, enum.Enum):
    """Where a trial is in its life: the one vocabulary of trial states.

    Live: PENDING (waiting for a worker), RUNNING, PAUSED (keeps a checkpoint, may run again).
    Ended: FINISHED (its function returned, `stop=` was met, or it reached the scheduler's
    `max_t`), EARLY_STOPPED (the scheduler stopped it before that, or paused it and nothing
    resumed it), ERROR (it failed `max_failures + 1` times). The journal and experiment.json keep
    these values; resume, the console, `ls`, `show --json`, the dashboard, the plots,
    TensorBoard and `ExperimentAnalysis` all show them as they are.

    `TERMINATED`, the single ended state of older versions, is another name for FINISHED, and a
    file that says "TERMINATED" reads as FINISHED.

    Example:
        >>> [t.trial_id for t in analysis.trials if t.status is Status.EARLY_STOPPED]
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ERROR = "ERROR"
    EARLY_STOPPED = "EARLY_STOPPED"
    FINISHED = "FINISHED"
    TERMINATED = "FINISHED"  # the older name: an alias of FINISHED

    @classmethod
    def _missing_(cls, value: object) -> Status | None:
        return cls.FINISHED if value == "TERMINATED" else None  # written by an older asynctune

    @property
    def is_finished(self) -> bool:
        """Ended for good: FINISHED, EARLY_STOPPED or ERROR."""
        return self in (Status.FINISHED, Status.EARLY_STOPPED, Status.ERROR)


class Decision(str, enum.Enum):
    """What a scheduler decides on a result: it is in force before the trial's next result."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"  # checkpoint, free the worker; the trial can be resumed later
    STOP = "STOP"  # the trial ends: EARLY_STOPPED, or FINISHED if it had reached max_t


CONTINUE, PAUSE, STOP = Decision.CONTINUE, Decision.PAUSE, Decision.STOP


@dataclass(frozen=True)
class Mutate:
    """Restart the trial with a new config from a checkpoint (PBT's exploit and explore).

    Trainables with `reset_config` keep their process; others restart in the same worker and
    see the checkpoint through `get_checkpoint()` / `load_checkpoint()`.
    """

    config: dict[str, Any]
    checkpoint: str | None = None


# Fields every result gets from the framework, as in Ray Tune.
AUTO_RESULT_KEYS = (
    "trial_id", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp",
    "hostname", "pid",
)


@dataclass(eq=False)
class Trial:
    """One configuration being trained: its config, status, latest result and checkpoint.

    `checkpoint` is the path of the latest checkpoint the trial reported (in the driver's
    experiment directory); `restore_checkpoint` is what its next start resumes from.
    """

    trial_id: str
    config: dict[str, Any]
    index: int = 0
    status: Status = Status.PENDING
    path: str = ""  # the trial's directory
    last_result: dict[str, Any] | None = None
    num_results: int = 0
    checkpoint: str | None = None
    restore_checkpoint: str | None = None
    error: str | None = None
    error_traceback: str | None = None
    num_failures: int = 0
    resources: dict[str, float] = field(default_factory=dict)
    placement: Any = None
    start_time: float | None = None
    end_time: float | None = None
    # Set by the controller while the trial waits for a scheduler to decide on its result.
    metric_best: float | None = None
    lineage: list[dict[str, Any]] = field(default_factory=list)
    # Iteration and time the next start continues from (after a pause or restore).
    restore_iteration: int = 0
    restore_time_total: float = 0.0
    checkpoint_iteration: int = 0
    checkpoint_time_total: float = 0.0
    # Set by the controller once STOP is decided on its latest result: that result is its last
    # (schedulers that copy trials, PBT, take no donor that is ending). Already set while the
    # scheduler decides when a stop criterion or the experiment's end stops it there. Cleared
    # when it starts again.
    ending: bool = False

    @property
    def iteration(self) -> int:
        return int(self.last_result.get("training_iteration", 0)) if self.last_result else 0

    @property
    def local_path(self) -> str:
        """The trial's directory, under Ray Tune's name (`logdir` is its older one), for Ray
        callbacks that write files there."""
        return self.path

    logdir = local_path

    def metric_value(self, metric: str) -> float | None:
        """The latest value of `metric`, or None if the trial has not reported it."""
        if not self.last_result or metric not in self.last_result:
            return None
        return as_float(self.last_result[metric])

    def update_best(self, metric: str | list[str] | None, mode: str | list[str] | None, result: dict[str, Any]) -> None:
        self.metric_best = update_best(self.metric_best, metric, mode, result)

    def summary(self) -> dict[str, Any]:
        """The JSON-able record of this trial kept in experiment.json."""
        return {
            "trial_id": self.trial_id,
            "index": self.index,
            "status": self.status.value,
            "config": self.config,
            "path": self.path,
            "num_results": self.num_results,
            "last_result": self.last_result,
            "metric_best": self.metric_best,
            "checkpoint": self.checkpoint,
            "checkpoint_iteration": self.checkpoint_iteration,
            "checkpoint_time_total": self.checkpoint_time_total,
            "error": self.error,
            "num_failures": self.num_failures,
            "resources": self.resources,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "lineage": self.lineage,
        }

    def __repr__(self) -> str:
        return f"Trial({self.trial_id}, {self.status.value})"


def now() -> float:
    return time.time()
