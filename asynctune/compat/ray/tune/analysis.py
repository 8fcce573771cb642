"""Ray's `tune.ExperimentAnalysis` (what the legacy `tune.run` returns), on asynctune's: Ray's
default scope ("last"), Ray's signatures, checkpoints as `tune.Checkpoint`s."""

from __future__ import annotations

from typing import Any

import asynctune as _at
from asynctune import Trial

from ._results import Result, best_results_frame, last_results_frame, trial_frame
from ._session import Checkpoint

_RAY_SCOPE = "last"  # Ray compares each trial's last result unless told otherwise


class ExperimentAnalysis(_at.ExperimentAnalysis):
    """An experiment's trials and results, as Ray's `ExperimentAnalysis`.

    Example:
        >>> analysis = tune.run(train, config=space, metric="loss", mode="min")
        >>> analysis.best_config, analysis.best_result["loss"]
        >>> checkpoint = analysis.get_best_checkpoint(analysis.best_trial, metric="loss", mode="min")
        >>> analysis.trial_dataframes[analysis.best_trial.trial_id]["loss"]

    As in Ray, "best" compares each trial's last result (scope="last") and failed trials are
    ranked too; checkpoints are `tune.Checkpoint`s. `trial_dataframes` is keyed by trial id.
    Trials are asynctune `Trial`s: their status is FINISHED or EARLY_STOPPED where Ray says
    TERMINATED.
    """

    def __init__(self, experiment_checkpoint_path: str, *, storage_filesystem: Any = None,
                 trials: list[Trial] | None = None, default_metric: str | None = None,
                 default_mode: str | None = None) -> None:
        if storage_filesystem is not None:
            raise ValueError("ExperimentAnalysis: only local directories are supported (storage_filesystem= must "
                             "be None)")
        super().__init__(experiment_checkpoint_path, metric=default_metric, mode=default_mode, trials=trials)

    @property
    def experiment_path(self) -> str:
        return self.experiment_dir

    def get_best_trial(self, metric: str | None = None, mode: str | None = None,  # type: ignore[override]
                       scope: str = _RAY_SCOPE, filter_nan_and_inf: bool = True) -> Trial | None:
        return super().get_best_trial(metric, mode, scope, filter_nan_and_inf=filter_nan_and_inf,
                                      include_failed=True)

    def get_best_config(self, metric: str | None = None, mode: str | None = None,
                        scope: str = _RAY_SCOPE) -> dict[str, Any] | None:
        trial = self.get_best_trial(metric, mode, scope)
        return trial.config if trial else None

    def get_best_result(self, metric: str | None = None, mode: str | None = None,  # type: ignore[override]
                        scope: str = _RAY_SCOPE) -> dict[str, Any] | None:
        trial = self.get_best_trial(metric, mode, scope)
        return trial.last_result if trial else None

    def get_best_checkpoint(self, trial: Trial, metric: str | None = None,  # type: ignore[override]
                            mode: str | None = None) -> Checkpoint | None:
        """The trial's checkpoint saved with its best value of `metric` (Ray's signature: the
        trial first); None if none of its checkpoints is left."""
        if not isinstance(trial, Trial):
            raise ValueError(f"ExperimentAnalysis.get_best_checkpoint: the first argument is the trial (e.g. "
                             f"analysis.best_trial), got {trial!r}")
        metric, mode = self._metric_mode(metric, mode)
        return Result(self, trial).get_best_checkpoint(metric, mode)

    def get_last_checkpoint(self, trial: Trial | None = None, metric: str = "training_iteration",
                            mode: str = "max") -> Checkpoint | None:
        """The checkpoint of `trial` (default: the best trial) saved with the highest (`mode`)
        value of `metric`: by default its latest."""
        trial = trial if trial is not None else self.best_trial
        return Result(self, trial).get_best_checkpoint(metric, mode) if trial is not None else None

    def get_best_logdir(self, metric: str | None = None, mode: str | None = None,
                        scope: str = _RAY_SCOPE) -> str | None:
        """The best trial's directory (Ray 2.0-2.6)."""
        trial = self.get_best_trial(metric, mode, scope)
        return trial.path if trial is not None else None

    def get_trial_checkpoints_paths(self, trial: Trial, metric: str | None = None) -> list[tuple[str, Any]]:
        """Each checkpoint of `trial` still on disk with its value of `metric` (default:
        training_iteration), oldest first (Ray 2.0-2.6)."""
        metric = metric or "training_iteration"
        return [(checkpoint.path, result.get(metric)) for checkpoint, result in Result(self, trial).best_checkpoints]

    def fetch_trial_dataframes(self) -> dict[str, Any]:
        return self.trial_dataframes

    def get_all_configs(self, prefix: bool = False) -> dict[str, dict[str, Any]]:
        """Each trial's config, keyed by the trial's directory (as Ray's)."""
        return {trial.path or trial.trial_id: ({"config": trial.config} if prefix else trial.config)
                for trial in self.trials}

    @property
    def best_trial(self) -> Trial | None:  # type: ignore[override]
        return self.get_best_trial()

    @property
    def best_config(self) -> dict[str, Any] | None:
        return self.get_best_config()

    @property
    def best_result(self) -> dict[str, Any] | None:
        return self.get_best_result()

    @property
    def best_checkpoint(self) -> Checkpoint | None:  # type: ignore[override]
        trial = self.best_trial
        return self.get_best_checkpoint(trial) if trial is not None else None

    @property
    def best_dataframe(self) -> Any:
        trial = self.best_trial
        return self.trial_dataframes[trial.trial_id] if trial is not None else None

    @property
    def best_result_df(self) -> Any:
        import pandas as pd
        return pd.DataFrame([self.best_result or {}])

    @property
    def results_df(self) -> Any:
        return self.dataframe()

    @property
    def trial_dataframes(self) -> dict[str, Any]:  # type: ignore[override]
        """Every result of every trial, one DataFrame per trial id (a property, as in Ray)."""
        return {trial.trial_id: trial_frame(self, trial) for trial in self.trials}

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> Any:  # type: ignore[override]
        """One row per trial: its last result, or with `metric` and `mode` its best one."""
        if metric is None:
            return last_results_frame(self)
        if mode not in ("min", "max"):
            raise ValueError(f"ExperimentAnalysis.dataframe: give mode='min' or 'max' with metric, got {mode!r}")
        return best_results_frame(self, metric, mode)
