"""Ray's older `tune.run(...)`, as a Tuner: returns Ray's ExperimentAnalysis (best_config,
best_trial, best_checkpoint, dataframe(), trial_dataframes, get_best_checkpoint(trial, ...))."""

from __future__ import annotations

import logging
from typing import Any

import asynctune as _at

from .._unsupported import unsupported
from ._configs import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from ._trainables import with_resources
from ._tuner import Tuner
from .analysis import ExperimentAnalysis

logger = logging.getLogger(__name__)


def run(run_or_experiment: Any, *, name: str | None = None, metric: str | None = None, mode: str | None = None,
        stop: Any = None, time_budget_s: float | None = None, config: dict[str, Any] | None = None,
        resources_per_trial: Any = None, num_samples: int = 1, storage_path: str | None = None,
        local_dir: str | None = None, search_alg: Any = None, scheduler: Any = None,
        checkpoint_config: CheckpointConfig | None = None, verbose: int | None = None, callbacks: Any = None,
        max_concurrent_trials: int | None = None, keep_checkpoints_num: int | None = None,
        checkpoint_score_attr: str | None = None, checkpoint_freq: int = 0, checkpoint_at_end: bool = False,
        max_failures: int = 0, fail_fast: bool | str = False, resume: Any = None, restore: str | None = None,
        raise_on_failed_trial: bool = True, progress_reporter: Any = None, **ignored: Any) -> ExperimentAnalysis:
    """Ray's `tune.run(trainable, config=..., num_samples=..., ...)`; see Tuner for the mapping."""
    if resume or restore:
        unsupported("tune.run(resume=/restore=)", "use tune.Tuner.restore(path) or asynctune.resume(path)")
    if ignored:
        logger.debug("tune.run: ignoring %s", sorted(ignored))
    if checkpoint_config is None:
        order = "min" if checkpoint_score_attr and checkpoint_score_attr.startswith("min-") else "max"
        attribute = checkpoint_score_attr.removeprefix("min-") if checkpoint_score_attr else None
        checkpoint_config = CheckpointConfig(num_to_keep=keep_checkpoints_num, checkpoint_score_attribute=attribute,
                                             checkpoint_score_order=order, checkpoint_frequency=checkpoint_freq,
                                             checkpoint_at_end=checkpoint_at_end)
    trainable = with_resources(run_or_experiment, resources_per_trial) if resources_per_trial else run_or_experiment
    tuner = Tuner(trainable, param_space=config,
                  tune_config=TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                         num_samples=num_samples, max_concurrent_trials=max_concurrent_trials,
                                         time_budget_s=time_budget_s),
                  run_config=RunConfig(name=name, storage_path=storage_path or local_dir, stop=stop,
                                       callbacks=callbacks, verbose=verbose, checkpoint_config=checkpoint_config,
                                       progress_reporter=progress_reporter,
                                       failure_config=FailureConfig(max_failures=max_failures, fail_fast=fail_fast)))
    grid = tuner.fit()
    analysis = ExperimentAnalysis(grid.experiment_path, trials=grid._analysis.trials)
    if raise_on_failed_trial and grid.errors:
        raise _at.TrialsFailed([r._trial for r in grid if r.error is not None], len(grid), analysis)
    return analysis
