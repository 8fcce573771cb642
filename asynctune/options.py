"""`RunOptions`: every option of `run()` but the trainable, typed, defaulted and checked once.

The user-facing signature and its documentation are `run()`'s; `run_async()` takes the same
parameters (its signature is `run()`'s, by construction), and a test keeps `run()` and this
class in step. The controller reads its options from here, and resume() rebuilds them from the
saved run spec (`as_saved` / `from_saved`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .algorithms.base import Scheduler, Searcher
from .core.objectives import check_metric_mode, normalize_objectives
from .core.resources import Resources, ResourcesSpec

if TYPE_CHECKING:
    from .executors.base import Executor
    from .reporting.callback import Callback
    from .core.stopper import Stopper

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """The options of one experiment; see `asynctune.run` for what each one means."""

    config: Mapping[str, Any] | None = None
    num_samples: int = 1
    metric: str | Sequence[str] | None = None  # kept as a string, or a list of >= 2 with a list of modes
    mode: str | Sequence[str] | None = None
    stop: Mapping[str, float] | Callable[[str, dict[str, Any]], bool] | Stopper | None = None
    search_alg: Searcher | None = None
    scheduler: Scheduler | None = None
    executor: Executor | None = None
    resources_per_trial: ResourcesSpec = None
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    storage_path: str | None = None
    name: str | None = None
    seed: int | None = None
    verbose: int = 2
    callbacks: Sequence[Callback] = ()
    max_failures: int = 0
    fail_fast: bool = False
    raise_on_failed_trial: bool | str = "all"
    stop_grace_s: float = 5.0
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool = False
    keep_checkpoints_num: int | None = None
    monitor: bool | float = False
    memory_limit_mb: float | None = None
    tensorboard: bool | None = None
    dashboard: bool = False

    def __post_init__(self) -> None:
        # One form from here on: a metric string, or a list of >= 2 metrics with a list of modes.
        check_metric_mode("run", self.metric, self.mode, multi_objective=True)
        metric, mode = normalize_objectives(self.metric, self.mode)
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "mode", mode)

    def check(self) -> None:
        """Raise ValueError naming the first bad option (what run() checks before any trial).
        metric/mode were checked and normalised as the options were made (__post_init__)."""
        if (self.metric is None) != (self.mode is None):
            raise ValueError(f"run: pass both metric= and mode= or neither, got metric={self.metric!r}, "
                             f"mode={self.mode!r}")
        _check_int("num_samples", self.num_samples, minimum=-1)
        if self.num_samples == 0:
            raise ValueError("run: num_samples must be >= 1, or -1 for no limit, got num_samples=0")
        if self.num_samples == -1 and self.time_budget_s is None and self.stop is None:
            logger.info("num_samples=-1 without time_budget_s: the searcher decides when to finish")
        if self.max_concurrent_trials is not None:
            _check_int("max_concurrent_trials", self.max_concurrent_trials, minimum=1)
        budget = self.time_budget_s
        if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
            raise ValueError(f"run: time_budget_s must be a positive number of seconds, got time_budget_s={budget!r}")
        _check_int("max_failures", self.max_failures, minimum=-1)
        self.failed_trials_raise()
        grace = self.stop_grace_s
        if isinstance(grace, bool) or not (isinstance(grace, (int, float)) and grace >= 0):
            raise ValueError(f"run: stop_grace_s must be a number of seconds >= 0, got stop_grace_s={grace!r}")
        _check_int("checkpoint_frequency", self.checkpoint_frequency, minimum=0)
        if self.keep_checkpoints_num is not None:
            _check_int("keep_checkpoints_num", self.keep_checkpoints_num, minimum=1)
        if self.verbose not in (0, 1, 2, 3):
            raise ValueError(f"run: verbose must be 0, 1, 2 or 3, got verbose={self.verbose!r}")
        if not callable(self.resources_per_trial):
            Resources.parse(self.resources_per_trial)
        if self.seed is not None:
            _check_int("seed", self.seed, minimum=0)
        if self.dashboard and importlib.util.find_spec("aiohttp") is None:
            raise ValueError("run: dashboard=True needs aiohttp: pip install 'asynctune[dashboard]'")

    def failed_trials_raise(self) -> str:
        """raise_on_failed_trial as "all", "any" or "never" (True is "any", False "never")."""
        value = self.raise_on_failed_trial
        if isinstance(value, bool):
            return "any" if value else "never"
        if isinstance(value, str) and value in ("all", "any", "never"):
            return value
        raise ValueError(f'run: raise_on_failed_trial must be "all" (the default), "any" (or True) or "never" '
                         f"(or False), got raise_on_failed_trial={value!r}")

    def as_saved(self) -> dict[str, Any]:
        """The options as the run spec keeps them: a plain dict, so old specs stay loadable."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any], **overrides: Any) -> RunOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in {**saved, **overrides}.items() if k in known})


@dataclass
class ExperimentSpec:
    """What run() resolved beyond its options."""

    options: RunOptions
    name: str
    experiment_dir: str
    trainable_name: str
    monitor_interval_s: float | None = None  # sample trials' CPU, memory and GPUs this often


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"run: {name} must be an integer >= {minimum}, got {name}={value!r}")
