"""Ray's configuration objects (TuneConfig, RunConfig, FailureConfig, CheckpointConfig), checked
when made; `Tuner` turns them into `asynctune.run()` arguments."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._unsupported import unsupported
from .progress_reporter import check_reporter

logger = logging.getLogger(__name__)

RAY_STORAGE_PATH = "~/ray_results"  # Ray's default, where its scripts look for their experiments


@dataclass
class TuneConfig:
    """How to tune: Ray's `tune.TuneConfig`.

    Example:
        >>> tune.TuneConfig(metric="loss", mode="min", num_samples=20, scheduler=ASHAScheduler())

    `reuse_actors`, `trial_name_creator` and `trial_dirname_creator` are accepted and ignored:
    asynctune reuses worker processes on its own and names trial directories by trial id. As in
    Ray, each trial runs in its own directory unless `RAY_CHDIR_TO_TRIAL_DIR=0` or
    `chdir_to_trial_dir=False`.
    """

    mode: str | None = None
    metric: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    reuse_actors: bool | None = None
    trial_name_creator: Callable[[Any], str] | None = None
    trial_dirname_creator: Callable[[Any], str] | None = None
    chdir_to_trial_dir: Any = None  # deprecated in Ray: False keeps the driver's directory (RAY_CHDIR_TO_TRIAL_DIR=0)

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in ("min", "max"):
            raise ValueError(f"TuneConfig: mode must be 'min' or 'max', got mode={self.mode!r}")
        if hasattr(self.time_budget_s, "total_seconds"):  # Ray accepts a datetime.timedelta
            self.time_budget_s = self.time_budget_s.total_seconds()  # type: ignore[union-attr]
        if self.max_concurrent_trials == 0:  # Ray's "no limit"
            self.max_concurrent_trials = None
        if isinstance(self.search_alg, str):  # Ray's names: tune.run(search_alg="optuna")
            from .search import create_searcher
            self.search_alg = create_searcher(self.search_alg)
        if isinstance(self.scheduler, str):
            from .schedulers import create_scheduler
            self.scheduler = create_scheduler(self.scheduler)


@dataclass
class FailureConfig:
    """What to do when trials fail: Ray's `tune.FailureConfig` (max_failures retries a trial
    from its last checkpoint; fail_fast=True or "raise" ends the experiment at the first)."""

    max_failures: int = 0
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        if self.fail_fast not in (True, False, "raise"):
            raise ValueError(f"FailureConfig: fail_fast must be True, False or 'raise', got {self.fail_fast!r}")


@dataclass
class CheckpointConfig:
    """Which checkpoints to keep: Ray's `tune.CheckpointConfig`.

    Example:
        >>> tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="accuracy",
        ...                       checkpoint_score_order="max")

    Args:
        num_to_keep: Keep this many checkpoints per trial (default all): the latest ones, or
            with `checkpoint_score_attribute` the best by it (the latest is always kept too,
            since a paused or retried trial resumes from it).
        checkpoint_score_attribute: The result key that ranks checkpoints.
        checkpoint_score_order: "max" (default) or "min".
        checkpoint_frequency: For class trainables, checkpoint every this many steps.
        checkpoint_at_end: For class trainables, checkpoint when the trial ends.
    """

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (isinstance(self.num_to_keep, bool) or not isinstance(
                self.num_to_keep, int) or self.num_to_keep < 1):
            raise ValueError(f"CheckpointConfig: num_to_keep must be an integer >= 1 or None, "
                             f"got num_to_keep={self.num_to_keep!r}")
        if self.checkpoint_score_order not in ("min", "max"):
            raise ValueError(f"CheckpointConfig: checkpoint_score_order must be 'min' or 'max', "
                             f"got {self.checkpoint_score_order!r}")


@dataclass
class RunConfig:
    """Where and how long to run: Ray's `tune.RunConfig` (also `train.RunConfig`).

    `storage_path` defaults to Ray's ~/ray_results (so `Tuner.restore("~/ray_results/<name>")`
    finds the experiment). `stop` is a dict (a trial
    stops once any key reaches its value: result[key] >= value, True for flags such as
    {"done": True}), a function (trial_id, result) -> bool, or a `tune.Stopper`. `callbacks`
    are Ray-style `tune.Callback`s (or asynctune Callbacks). A `progress_reporter`
    (`tune.CLIReporter`) replaces asynctune's live table. `sync_config`, `log_to_file` and
    `checkpoint_config.checkpoint_frequency` for function trainables are accepted and ignored.
    """

    name: str | None = None
    storage_path: str | None = None
    storage_filesystem: Any = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    sync_config: Any = None
    verbose: int | None = None
    stop: Mapping[str, Any] | Callable[[str, dict[str, Any]], bool] | Any | None = None
    callbacks: Sequence[Any] | None = None
    progress_reporter: Any = None
    log_to_file: Any = False
    local_dir: str | None = None  # Ray 1.x's name for storage_path
    worker_runtime_env: Any = None

    def __post_init__(self) -> None:
        if self.storage_filesystem is not None:
            unsupported("RunConfig(storage_filesystem=...)",
                        "give a local storage_path; to gather results from other machines use asynctune's "
                        "SSHExecutor or DaskExecutor, which copy checkpoints back to the driver")
        if self.storage_path is None:
            self.storage_path = self.local_dir or RAY_STORAGE_PATH
        if self.storage_path is not None and "://" in str(self.storage_path):
            unsupported(f"RunConfig(storage_path={self.storage_path!r})", "give a local directory")
        if self.verbose is not None and self.verbose not in (0, 1, 2, 3):
            raise ValueError(f"RunConfig: verbose must be 0, 1, 2 or 3, got verbose={self.verbose!r}")
        self.failure_config = self.failure_config or FailureConfig()
        self.checkpoint_config = self.checkpoint_config or CheckpointConfig()
        check_reporter(self.progress_reporter)
        ignored = [name for name in ("sync_config", "worker_runtime_env")
                   if getattr(self, name) is not None]
        if ignored:
            logger.debug("RunConfig: ignoring %s", ignored)


class SyncConfig:
    """Accepted for Ray scripts, with any of Ray's arguments over its versions (`syncer=None`,
    `sync_on_checkpoint`, `upload_dir`, `sync_period`, ...); asynctune keeps every file on the
    driver's disk already. An `upload_dir` to a remote URI is refused (only local storage).

    Example:
        >>> tune.RunConfig(sync_config=tune.SyncConfig(syncer=None))
    """

    def __init__(self, upload_dir: str | None = None, sync_period: float = 300, sync_timeout: float = 1800,
                 sync_artifacts: bool = False, **extra: Any) -> None:
        if upload_dir is not None and "://" in str(upload_dir):
            unsupported(f"SyncConfig(upload_dir={upload_dir!r})", "give a local RunConfig(storage_path=...)")
        self.upload_dir, self.sync_period, self.sync_timeout = upload_dir, sync_period, sync_timeout
        self.sync_artifacts, self.extra = sync_artifacts, extra

    def __repr__(self) -> str:
        return f"SyncConfig(upload_dir={self.upload_dir!r}, {self.extra!r})"
