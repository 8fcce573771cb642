"""LightGBM: report each boosting round's evaluation metrics, with the booster as checkpoint.

`pip install 'asynctune[lightgbm]'`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._common import (
    checked_postprocessing_fn, load_file, metric_names, plain_filename, positive_int_or_zero, postprocess,
    report_with_checkpoint, require, select_metrics,
)

lgb = require("lightgbm", "lightgbm", "asynctune.integrations.lightgbm")

_OWNER = "lightgbm TuneReportCheckpointCallback"


class TuneReportCheckpointCallback:
    """Reports the metrics of each boosting round to asynctune, and saves the booster with them.

    Metrics are named `<valid name>-<metric>` as LightGBM logs them for
    `valid_sets=[dvalid], valid_names=["valid"]` (e.g. `valid-binary_logloss`); `metrics=` picks or
    renames them. Each round is one result, so `max_t` counts rounds. A scheduler's STOP or
    PAUSE ends `lgb.train` where it is; `load_booster()` gives back the booster to continue from
    (pass it as `init_model=`, and train the rounds still to do).

    Example:
        >>> from asynctune.integrations.lightgbm import TuneReportCheckpointCallback, load_booster
        >>> def train(config):
        ...     booster = load_booster()  # None on a fresh start
        ...     done = booster.current_iteration() if booster else 0
        ...     lgb.train(config, dtrain, num_boost_round=100 - done, init_model=booster,
        ...               valid_sets=[dvalid], valid_names=["valid"],
        ...               callbacks=[TuneReportCheckpointCallback({"loss": "valid-binary_logloss"})])

    Args:
        metrics: None reports every logged metric; a name or a list reports those; a dict
            {reported name: LightGBM's name} renames them.
        frequency: Save the booster with every `frequency`-th round's result (0: never but at the end).
        checkpoint_at_end: Save the booster with the last round's result.
        filename: The booster's file inside the checkpoint.
        results_postprocessing_fn: Changes the chosen metrics before each report.
    """

    order = 20  # LightGBM runs callbacks by this; after its own logging and early stopping (30 runs after)

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, *, frequency: int = 1,
                 checkpoint_at_end: bool = True, filename: str = "model.txt",
                 results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._names = metric_names(metrics, _OWNER)
        self.results_postprocessing_fn = checked_postprocessing_fn(results_postprocessing_fn, _OWNER)
        self.frequency = positive_int_or_zero(frequency, "frequency", _OWNER)
        self.filename = plain_filename(filename, _OWNER)
        self.checkpoint_at_end = bool(checkpoint_at_end)

    def __call__(self, env: Any) -> None:
        metrics = postprocess(select_metrics(self.logged_metrics(env.evaluation_result_list or ()), self._names,
                                             _OWNER), self.results_postprocessing_fn)
        rounds = env.iteration + 1
        due = (self.frequency > 0 and rounds % self.frequency == 0) or (
            self.checkpoint_at_end and rounds == env.end_iteration)
        report_with_checkpoint(metrics, self._saver(env.model) if due else None)

    def logged_metrics(self, entries: Sequence[tuple]) -> dict[str, Any]:
        """This round's metrics as {"<valid name>-<metric>": value}. Entries are (data, metric,
        value, higher_is_better), with the std after them under `lgb.cv` (whose mean is reported).
        A subclass may name or shape them differently."""
        return {f"{entry[0]}-{entry[1]}": float(entry[2]) for entry in entries}

    def _saver(self, model: Any):
        return lambda directory: model.save_model(os.path.join(directory, self.filename), num_iteration=-1)


def load_booster(checkpoint: Any = None, *, filename: str = "model.txt") -> Any:
    """The booster saved in a checkpoint (default: the trial's `asynctune.get_checkpoint()`), or
    None on a fresh start.

    Example:
        >>> booster = load_booster(analysis.best_checkpoint)
    """
    return load_file(lgb.Booster, filename, checkpoint)
