"""XGBoost: report each boosting round's evaluation metrics, with the booster as checkpoint.

`pip install 'asynctune[xgboost]'`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._common import (
    checked_postprocessing_fn, load_file, metric_names, plain_filename, positive_int_or_zero, postprocess,
    report_with_checkpoint, require, select_metrics,
)

xgb = require("xgboost", "xgboost", "asynctune.integrations.xgboost")

_OWNER = "xgboost TuneReportCheckpointCallback"


class TuneReportCheckpointCallback(xgb.callback.TrainingCallback):
    """Reports the metrics of each boosting round to asynctune, and saves the booster with them.

    Metrics are named `<eval name>-<metric>` as XGBoost logs them for `evals=[(dvalid, "valid")]`
    (e.g. `valid-logloss`); `metrics=` picks or renames them. Each round is one result (its
    `training_iteration`), so `max_t` and `grace_period` count rounds. A scheduler's STOP or PAUSE
    ends `xgb.train` where it is; `load_booster()` gives back the booster to continue from
    (pass it as `xgb_model=`, and train the rounds still to do).

    Example:
        >>> from asynctune.integrations.xgboost import TuneReportCheckpointCallback, load_booster
        >>> def train(config):
        ...     booster = load_booster()  # None on a fresh start
        ...     done = booster.num_boosted_rounds() if booster else 0
        ...     xgb.train(config, dtrain, num_boost_round=100 - done, xgb_model=booster,
        ...               evals=[(dvalid, "valid")],
        ...               callbacks=[TuneReportCheckpointCallback({"loss": "valid-logloss"})])

    Args:
        metrics: None reports every logged metric; a name or a list reports those; a dict
            {reported name: XGBoost's name} renames them.
        frequency: Save the booster with every `frequency`-th round's result (0: never but at the end).
        checkpoint_at_end: Save the booster when training ends. When the last round was not
            already saved, this reports its metrics once more, with the checkpoint.
        filename: The booster's file inside the checkpoint (its extension picks XGBoost's format).
        results_postprocessing_fn: Changes the chosen metrics before each report (e.g. adds an
            average over several eval sets).
    """

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, *, frequency: int = 1,
                 checkpoint_at_end: bool = True, filename: str = "model.ubj",
                 results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._names = metric_names(metrics, _OWNER)
        self.results_postprocessing_fn = checked_postprocessing_fn(results_postprocessing_fn, _OWNER)
        self.frequency = positive_int_or_zero(frequency, "frequency", _OWNER)
        self.filename = plain_filename(filename, _OWNER)
        self.checkpoint_at_end = bool(checkpoint_at_end)
        self._last: dict[str, Any] | None = None  # the last round's metrics, while not yet saved with a booster

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Mapping[str, list]]) -> bool:
        metrics = postprocess(select_metrics(self.logged_metrics(evals_log), self._names, _OWNER),
                              self.results_postprocessing_fn)
        due = self.frequency > 0 and (epoch + 1) % self.frequency == 0
        self._last = None if due else metrics
        report_with_checkpoint(metrics, self._saver(model) if due else None)
        return False  # never stop training here: asynctune's scheduler does, through report

    def after_training(self, model: Any) -> Any:
        if self.checkpoint_at_end and self._last is not None:
            metrics, self._last = self._last, None
            report_with_checkpoint(metrics, self._saver(model))
        return model

    def logged_metrics(self, evals_log: Mapping[str, Mapping[str, list]]) -> dict[str, Any]:
        """This round's metrics as {"<eval name>-<metric>": value}; `xgb.cv` logs (mean, std), of
        which the mean is reported. A subclass may name or shape them differently."""
        return {f"{data}-{name}": _last_value(values) for data, log in evals_log.items() for name, values in log.items()}

    def _saver(self, model: Any):
        return lambda directory: model.save_model(os.path.join(directory, self.filename))


def load_booster(checkpoint: Any = None, *, filename: str = "model.ubj") -> Any:
    """The booster saved in a checkpoint (default: the trial's `asynctune.get_checkpoint()`), or
    None on a fresh start.

    Example:
        >>> booster = load_booster(analysis.best_checkpoint)
    """
    return load_file(xgb.Booster, filename, checkpoint)


def _last_value(values: list) -> float:
    value = values[-1]
    return float(value[0] if isinstance(value, tuple) else value)  # xgb.cv logs (mean, std)
