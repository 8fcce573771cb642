"""Ray's `ResultGrid` and `Result`, read from asynctune's `ExperimentAnalysis`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

from asynctune import ExperimentAnalysis, Status, Trial, TrialFailed
from asynctune.analysis.experiment import _checkpoints_by_iteration

from ._session import Checkpoint


def ray_terminated(status: Status) -> bool:
    """Ray's TERMINATED: ended without an error (asynctune tells FINISHED and EARLY_STOPPED apart)."""
    return status in (Status.FINISHED, Status.EARLY_STOPPED)

class Result:
    """One trial's outcome, as Ray's `tune.Result`.

    Attributes:
        config: The trial's config.
        metrics: Its last reported result (with "config" added, and "done": True once the trial
            ended without an error, as in Ray).
        checkpoint: Its latest checkpoint, or None.
        path: The trial's directory.
        error: A `TrialFailed` if the trial failed, else None.
    """

    def __init__(self, analysis: ExperimentAnalysis, trial: Trial) -> None:
        self._analysis, self._trial = analysis, trial
        self.config: dict[str, Any] = trial.config
        self.metrics: dict[str, Any] = {**(trial.last_result or {}), "config": trial.config}
        # Ray marks a trial's final result done; asynctune records how the trial ended instead
        self.metrics.setdefault("done", ray_terminated(trial.status))
        self.path: str = trial.path or os.path.join(analysis.experiment_dir, trial.trial_id)
        self.checkpoint = Checkpoint(trial.checkpoint) if trial.checkpoint and os.path.isdir(trial.checkpoint) else None
        self.error = (TrialFailed(trial.trial_id, trial.error or "failed", trial.error_traceback or "")
                      if trial.status is Status.ERROR else None)
        self.filesystem = None

    @property
    def log_dir(self) -> str:
        """Ray 2.0-2.6's name for `path`."""
        return self.path

    @property
    def metrics_dataframe(self) -> Any:
        """Every result the trial reported, one row each, with its config as `config/...`
        columns and nested values as `a/b` columns, as in Ray (needs pandas)."""
        return trial_frame(self._analysis, self._trial)

    @property
    def best_checkpoints(self) -> list[tuple[Checkpoint, dict[str, Any]]]:
        """The checkpoints still on disk, each with the result it was saved with, oldest first."""
        by_iteration = {r.get("training_iteration"): r for r in self._analysis.trial_results(self._trial.trial_id)}
        return [(Checkpoint(path), by_iteration.get(iteration, {}))
                for iteration, path in sorted(_checkpoints_by_iteration(self.path).items())]

    def get_best_checkpoint(self, metric: str, mode: str) -> Checkpoint | None:
        if mode not in ("min", "max"):
            raise ValueError(f"Result.get_best_checkpoint: mode must be 'min' or 'max', got {mode!r}")
        scored = [(r[metric], c) for c, r in self.best_checkpoints if _finite(r.get(metric))]
        if not scored:
            return None
        return (min if mode == "min" else max)(scored, key=lambda pair: pair[0])[1]

    def __repr__(self) -> str:
        return f"Result(metrics={self._trial.last_result}, path={self.path!r}, checkpoint={self.checkpoint})"


class ResultGrid:
    """All trials of an experiment, as Ray's `tune.ResultGrid`: index it, iterate it, or ask for the best.

    Example:
        >>> results = tuner.fit()
        >>> best = results.get_best_result(metric="loss", mode="min")
        >>> best.config, best.metrics["loss"], best.checkpoint
    """

    def __init__(self, analysis: ExperimentAnalysis) -> None:
        self._analysis = analysis
        self._results = [Result(analysis, trial) for trial in analysis.trials]

    @property
    def experiment_path(self) -> str:
        return self._analysis.experiment_dir

    @property
    def filesystem(self) -> None:
        return None

    def get_best_result(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                        filter_nan_and_inf: bool = True) -> Result:
        """The best trial's Result; scope "last" (Ray's default) ranks trials by their last result,
        "all" by their best ever, "avg", "last-5-avg", "last-10-avg" by means."""
        trial = self._analysis.get_best_trial(metric, mode, scope, filter_nan_and_inf=filter_nan_and_inf,
                                              include_failed=True)  # Ray ranks every trial that has the metric
        if trial is None:
            raise RuntimeError(f"No best trial found for metric={metric or self._analysis.default_metric!r}: no trial "
                               "reported a finite value of it")
        return next(r for r in self._results if r._trial is trial)

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None) -> Any:
        """One row per trial: its last result, or with filter_metric/filter_mode its best one."""
        if (filter_metric is None) != (filter_mode is None):
            raise ValueError("ResultGrid.get_dataframe: pass both filter_metric and filter_mode, or neither")
        if filter_metric is None:
            return last_results_frame(self._analysis)
        return best_results_frame(self._analysis, filter_metric, filter_mode)  # type: ignore[arg-type]

    @property
    def errors(self) -> list[TrialFailed]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        return sum(1 for trial in self._analysis.trials if ray_terminated(trial.status))

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def __repr__(self) -> str:
        return f"ResultGrid<{len(self)} results, {self.num_errors} errors, {self.experiment_path}>"


def ray_frame(rows: list[dict[str, Any]]) -> Any:
    """Rows as Ray's DataFrames show them: a nested value as `a/b` columns (the config as `config/...`)."""
    import pandas as pd
    return pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()


def trial_frame(analysis: ExperimentAnalysis, trial: Trial) -> Any:
    """Every result of a trial, with its config (Ray's `metrics_dataframe`, `trial_dataframes`)."""
    return ray_frame([{**r, "config": trial.config} for r in analysis.trial_results(trial.trial_id)])


def last_results_frame(analysis: ExperimentAnalysis) -> Any:
    """One row per trial: its last result, config, id, status and directory (`logdir`)."""
    return ray_frame(ExperimentAnalysis.dataframe(analysis).to_dict("records"))  # asynctune's, not Ray's override


def best_results_frame(analysis: ExperimentAnalysis, metric: str, mode: str) -> Any:
    """One row per trial that reported a finite `metric` (`a/b` for a nested one): its best result
    by it, with its config."""
    rows = []
    for trial in analysis.trials:
        frame = trial_frame(analysis, trial)
        if metric in frame.columns:
            values = frame[metric].map(lambda v: v.item() if hasattr(v, "item") else v)  # numpy to Python numbers
            values = values.where(values.map(_finite)).astype(float)
            if values.notna().any():
                best = frame.loc[values.idxmin() if mode == "min" else values.idxmax()]
                rows.append({**best.to_dict(), "trial_id": trial.trial_id, "logdir": trial.path})
    return ray_frame(rows)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

