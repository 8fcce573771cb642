"""Ray's older `tune.run(...)`, as a Tuner: returns Ray's ExperimentAnalysis (best_config,
best_trial, best_checkpoint, dataframe(), trial_dataframes, get_best_checkpoint(trial, ...))."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from typing import Any

import asynctune as _at

from .._unsupported import unsupported
from ._configs import RAY_STORAGE_PATH, CheckpointConfig, FailureConfig, RunConfig, TuneConfig
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
    """Ray's `tune.run(trainable, config=..., num_samples=..., ...)`; see Tuner for the mapping.

    `resume="AUTO"` continues the experiment `name` if `storage_path` holds it, else starts it;
    `resume=True` / "LOCAL" continues it (it must exist); a "+ERRORED" / "+RESTART_ERRORED"
    suffix also reruns its failed trials, from their checkpoint or from the start."""
    _check_ray_arguments(ignored)
    if restore:
        unsupported("tune.run(restore=<checkpoint>)", "continue the experiment with resume='AUTO' or "
                    "tune.Tuner.restore(path); a trial restarts from its own latest checkpoint")
    errored = _resume_errored(resume)
    if ignored:
        logger.debug("tune.run: ignoring %s", sorted(ignored))
    if checkpoint_config is None:
        order = "min" if checkpoint_score_attr and checkpoint_score_attr.startswith("min-") else "max"
        attribute = checkpoint_score_attr.removeprefix("min-") if checkpoint_score_attr else None
        checkpoint_config = CheckpointConfig(num_to_keep=keep_checkpoints_num, checkpoint_score_attribute=attribute,
                                             checkpoint_score_order=order, checkpoint_frequency=checkpoint_freq,
                                             checkpoint_at_end=checkpoint_at_end)
    trainable = with_resources(run_or_experiment, resources_per_trial) if resources_per_trial else run_or_experiment
    tune_config = TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                             num_samples=num_samples, max_concurrent_trials=max_concurrent_trials,
                             time_budget_s=time_budget_s, chdir_to_trial_dir=ignored.get("chdir_to_trial_dir"))
    run_config = RunConfig(name=name, storage_path=storage_path or local_dir, stop=stop, callbacks=callbacks,
                           verbose=verbose, checkpoint_config=checkpoint_config, progress_reporter=progress_reporter,
                           failure_config=FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
                           storage_filesystem=ignored.get("storage_filesystem"),
                           sync_config=ignored.get("sync_config"))
    existing = _experiment_to_resume(resume, storage_path or local_dir, name)
    if existing is not None:
        tuner = Tuner.restore(existing, trainable=trainable, resume_errored=errored == "resume",
                              restart_errored=errored == "restart")
        if any(given is not None for given in (callbacks, progress_reporter, verbose, time_budget_s)):
            # As in Ray, this call's callbacks, reporting and time budget, not the first run's.
            tuner.tune_config, tuner.run_config, tuner._resume_with_call = tune_config, run_config, True
    else:
        tuner = Tuner(trainable, param_space=config, tune_config=tune_config, run_config=run_config)
    grid = tuner.fit()
    analysis = ExperimentAnalysis(grid.experiment_path, trials=grid._analysis.trials)
    if raise_on_failed_trial and grid.errors:
        raise _at.TrialsFailed([r._trial for r in grid if r.error is not None], len(grid), analysis)
    return analysis


# Ray's other tune.run arguments over its 1.x and 2.x versions: accepted, with nothing to do here
# (storage_filesystem and sync_config go to RunConfig, which checks them; chdir_to_trial_dir to TuneConfig).
_RAY_ONLY_ARGUMENTS = frozenset({
    "storage_filesystem", "sync_config", "log_to_file", "trial_name_creator", "trial_dirname_creator",
    "export_formats", "reuse_actors", "chdir_to_trial_dir", "checkpoint_keep_all_ranks",
    "checkpoint_upload_from_workers", "upload_dir", "sync_to_cloud", "sync_to_driver", "sync_on_checkpoint",
    "loggers", "queue_trials", "global_checkpoint_period", "with_server", "server_port", "ray_auto_init",
    "run_errored_only", "trial_executor", "_remote", "_remote_string", "_entrypoint", "_private_api",
})


def _check_ray_arguments(given: dict[str, Any]) -> None:
    """A keyword neither asynctune nor Ray's tune.run knows is a typo: say so before anything runs
    (`confg=` would otherwise run every trial with an empty config)."""
    unknown = sorted(set(given) - _RAY_ONLY_ARGUMENTS)
    if not unknown:
        return
    known = [*inspect.signature(run).parameters, *_RAY_ONLY_ARGUMENTS]
    hints = [f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, known, n=1)) else ""
             for name in unknown]
    raise TypeError("tune.run() got unexpected keyword argument(s) " +
                    ", ".join(f"{name!r}{hint}" for name, hint in zip(unknown, hints)))


_RESUME_MODES = {"AUTO": False, "LOCAL": True, "TRUE": True}  # the mode -> must the experiment exist
_ERRORED_SUFFIXES = {"": "keep", "+ERRORED": "resume", "+RESTART_ERRORED": "restart"}


def _resume_errored(resume: Any) -> str:
    """What tune.run(resume=...) does to failed trials ("keep", "resume", "restart"); checks it."""
    if resume in (None, False):
        return "keep"
    mode, suffix = _split_resume(resume)
    if mode not in _RESUME_MODES or suffix not in _ERRORED_SUFFIXES:
        unsupported(f"tune.run(resume={resume!r})", "use resume='AUTO' or 'LOCAL' (with '+ERRORED' or "
                    "'+RESTART_ERRORED' to rerun failed trials)")
    return _ERRORED_SUFFIXES[suffix]


def _experiment_to_resume(resume: Any, storage_path: str | None, name: str | None) -> str | None:
    """The directory tune.run(resume=...) continues, or None to start a new experiment."""
    if resume in (None, False):
        return None
    mode, _ = _split_resume(resume)
    path = os.path.join(os.path.expanduser(storage_path or RAY_STORAGE_PATH), name) if name else None
    if path is not None and Tuner.can_restore(path):
        return path
    if _RESUME_MODES[mode]:
        raise ValueError(f"tune.run(resume={resume!r}): there is no experiment to resume at "
                         f"{path or '(no name= given)'}; pass the name= of the first run, or resume='AUTO'")
    return None


def _split_resume(resume: Any) -> tuple[str, str]:
    text = "TRUE" if resume is True else str(resume).upper()
    mode, plus, suffix = text.partition("+")
    return mode, plus + suffix
