"""Ray's `ray.tune.integration.xgboost`: an XGBoost callback that reports each boosting round to Tune.

    xgb.train(config, train_set, evals=[(test_set, "test")],
              callbacks=[TuneReportCheckpointCallback(frequency=1, filename="model.json")])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import xgboost

from .. import _session
from ._report import Metrics, check_frequency, report_round, select, wants_checkpoint


class TuneReportCheckpointCallback(xgboost.callback.TrainingCallback):
    """Report the round's evaluation results as "<data>-<metric>" (e.g. "test-logloss"; with
    `xgb.cv`, each is the (mean, std) pair of the folds), and every `frequency` rounds and at the
    end the booster as a checkpoint.

    Args:
        metrics: Which results to report: a key, a list of keys, or {name to report: key}; all when None.
        filename: The model file inside the checkpoint directory.
        frequency: Checkpoint every this many rounds (0: only at the end).
        checkpoint_at_end: Checkpoint after the last round.
        results_postprocessing_fn: Changes the dict before it is reported (e.g. average cv folds).
    """

    def __init__(self, metrics: Metrics = None, filename: str = "model.json", frequency: int = 0,
                 checkpoint_at_end: bool = True,
                 results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        check_frequency(frequency)
        self.metrics, self.filename, self.frequency = metrics, filename, frequency
        self.checkpoint_at_end, self.results_postprocessing_fn = checkpoint_at_end, results_postprocessing_fn
        self._last: dict[str, Any] | None = None
        self._rounds = 0

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
        results = select({f"{data}-{metric}": values[-1] for data, by_metric in evals_log.items()
                          for metric, values in by_metric.items()}, self.metrics)
        if self.results_postprocessing_fn is not None:
            results = self.results_postprocessing_fn(results)
        self._last, self._rounds = results, epoch + 1
        report_round(results, model, self.filename,
                     checkpoint=wants_checkpoint(epoch + 1, self.frequency, done=False, at_end=False))
        return False  # go on: stopping is the scheduler's decision, taken inside report

    def after_training(self, model: Any) -> Any:
        if self.checkpoint_at_end and self._last is not None and not wants_checkpoint(
                self._rounds, self.frequency, done=False, at_end=False):
            # XGBoost tells the end only after the last round was reported: as Ray, report its
            # results once more, with the model
            report_round(dict(self._last), model, self.filename, checkpoint=True)
        return model

    @classmethod
    def get_model(cls, checkpoint: _session.Checkpoint, filename: str = "model.json") -> xgboost.Booster:
        booster = xgboost.Booster()
        with checkpoint.as_directory() as directory:
            booster.load_model(os.path.join(directory, filename))
        return booster


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report the round's evaluation results, without checkpoints."""

    def __init__(self, metrics: Metrics = None,
                 results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__(metrics, frequency=0, checkpoint_at_end=False, results_postprocessing_fn=results_postprocessing_fn)
