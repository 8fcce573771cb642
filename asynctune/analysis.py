"""ExperimentAnalysis: the results of an experiment, from run() or from its directory later."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from .algorithms.base import check_metric_mode
from .session import load_checkpoint
from .storage import EXPERIMENT_FILE, read_results
from .trial import Status, Trial

_SCOPES = ("last", "all", "avg", "last-5-avg", "last-10-avg")


class ExperimentAnalysis:
    """Trials, their results and the best of them.

    Example:
        >>> analysis = asynctune.run(train, config=space, metric="loss", mode="min")
        >>> analysis.best_config, analysis.best_result["loss"], analysis.best_checkpoint
        >>> later = ExperimentAnalysis("~/asynctune_results/train_2026-11-26_07-00-00")
        >>> later.dataframe().sort_values("loss").head()

    Args:
        experiment_dir: The experiment's directory (holds experiment.json).
        metric: Default metric for the best_* properties (default: the one run() used).
        mode: "min" or "max" (default: the one run() used).
    """

    def __init__(self, experiment_dir: str, *, metric: str | None = None, mode: str | None = None,
                 trials: Sequence[Trial] | None = None) -> None:
        check_metric_mode("ExperimentAnalysis", metric, mode)
        self.experiment_dir = os.path.abspath(os.path.expanduser(experiment_dir))
        state = self._read_state()
        self.name: str = state.get("name", os.path.basename(self.experiment_dir))
        self.status: str = state.get("status", "UNKNOWN")
        self.default_metric = metric or state.get("metric")
        self.default_mode = mode or state.get("mode")
        self.trials: list[Trial] = list(trials) if trials is not None else [_trial_from(s) for s in state.get("trials", [])]
        self._results: dict[str, list[dict[str, Any]]] = {}

    def _read_state(self) -> dict[str, Any]:
        path = os.path.join(self.experiment_dir, EXPERIMENT_FILE)
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise ValueError(f"{self.experiment_dir} is not an asynctune experiment directory (no {EXPERIMENT_FILE})") from None
        except ValueError as exc:
            raise ValueError(f"{path} is corrupted: {exc}") from exc

    # Best ----------------------------------------------------------------------------------------

    def get_best_trial(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                       *, filter_nan_and_inf: bool = True) -> Trial | None:
        """The best trial by `metric`: its last value (scope="last"), best value ("all"),
        mean ("avg"), or mean of its last 5 or 10 ("last-5-avg", "last-10-avg").
        Trials without a finite value of the metric are skipped; None if no trial has one."""
        metric, mode = self._metric_mode(metric, mode)
        if scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, got {scope=}")
        best: tuple[float, Trial] | None = None
        for trial in self.trials:
            value = self._score(trial, metric, mode, scope)
            if value is None or (filter_nan_and_inf and not math.isfinite(value)):
                continue
            if best is None or (value < best[0] if mode == "min" else value > best[0]):
                best = (value, trial)
        return best[1] if best else None

    def _score(self, trial: Trial, metric: str, mode: str, scope: str) -> float | None:
        if scope == "last":
            return trial.metric_value(metric)
        values = [_finite(r.get(metric)) for r in self.trial_results(trial.trial_id)]
        values = [v for v in values if v is not None]
        if not values:
            return None
        if scope == "all":
            return min(values) if mode == "min" else max(values)
        if scope == "avg":
            return sum(values) / len(values)
        tail = values[-(5 if scope == "last-5-avg" else 10):]
        return sum(tail) / len(tail)

    def _metric_mode(self, metric: str | None, mode: str | None) -> tuple[str, str]:
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if metric is None or mode is None:
            raise ValueError("no metric/mode: pass metric= and mode= to run() or to this call")
        check_metric_mode("ExperimentAnalysis", metric, mode)
        return metric, mode

    @property
    def best_trial(self) -> Trial | None:
        return self.get_best_trial()

    @property
    def best_config(self) -> dict[str, Any] | None:
        trial = self.best_trial
        return trial.config if trial else None

    @property
    def best_result(self) -> dict[str, Any] | None:
        trial = self.best_trial
        return trial.last_result if trial else None

    @property
    def best_checkpoint(self) -> str | None:
        """The directory of the best trial's latest checkpoint (None if it saved none)."""
        trial = self.best_trial
        return trial.checkpoint if trial else None

    def load_best_checkpoint(self) -> Any:
        """The best checkpoint as the trial saved it: the dict, or the directory path."""
        return load_checkpoint(self.best_checkpoint)

    @property
    def best_logdir(self) -> str | None:
        trial = self.best_trial
        return trial.path if trial else None

    # Tables --------------------------------------------------------------------------------------

    @property
    def results(self) -> dict[str, dict[str, Any] | None]:
        """Each trial's last result."""
        return {t.trial_id: t.last_result for t in self.trials}

    def trial_results(self, trial_id: str) -> list[dict[str, Any]]:
        """Every result a trial reported, in order (read from its result.jsonl)."""
        if trial_id not in self._results:
            trial = next((t for t in self.trials if t.trial_id == trial_id), None)
            if trial is None:
                raise KeyError(f"no trial {trial_id!r} in {self.experiment_dir}")
            self._results[trial_id] = read_results(trial.path or os.path.join(self.experiment_dir, trial_id))
        return self._results[trial_id]

    def dataframe(self) -> Any:
        """One row per trial: its last result, its config as config/... columns, its status."""
        pd = _pandas()
        rows = []
        for trial in self.trials:
            row: dict[str, Any] = dict(trial.last_result or {})
            row.update({f"config/{k}": v for k, v in _flatten(trial.config).items()})
            row.update(trial_id=trial.trial_id, status=trial.status.value, logdir=trial.path)
            rows.append(row)
        return pd.DataFrame(rows)

    def trial_dataframes(self) -> dict[str, Any]:
        """Every result of every trial, one DataFrame per trial."""
        pd = _pandas()
        return {t.trial_id: pd.DataFrame(self.trial_results(t.trial_id)) for t in self.trials}

    def __repr__(self) -> str:
        return f"ExperimentAnalysis({self.experiment_dir!r}, {len(self.trials)} trials, status={self.status})"


def _trial_from(summary: dict[str, Any]) -> Trial:
    trial = Trial(trial_id=summary["trial_id"], config=summary.get("config", {}), index=summary.get("index", 0))
    trial.status = Status(summary.get("status", "TERMINATED"))
    for key in ("path", "last_result", "num_results", "checkpoint", "error", "num_failures", "resources",
                "start_time", "end_time", "metric_best", "lineage", "checkpoint_iteration",
                "checkpoint_time_total"):
        if key in summary and summary[key] is not None:
            setattr(trial, key, summary[key])
    return trial


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = value
    return out


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("dataframes need pandas: pip install 'asynctune[pandas]'") from None
    return pandas
