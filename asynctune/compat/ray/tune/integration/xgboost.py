"""Ray's `ray.tune.integration.xgboost`: asynctune.integrations.xgboost with Ray's arguments,
defaults and metric values.

    xgb.train(config, train_set, evals=[(test_set, "test")],
              callbacks=[TuneReportCheckpointCallback(frequency=1, filename="model.json")])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from asynctune.integrations import xgboost as _xgboost
from .. import _session
from ._report import Metrics, load_from


class TuneReportCheckpointCallback(_xgboost.TuneReportCheckpointCallback):
    """Report the round's evaluation results as "<data>-<metric>" (e.g. "test-logloss"; with
    `xgb.cv`, each is the (mean, std) pair of the folds, as in Ray), and every `frequency` rounds
    and at the end the booster as a checkpoint.

    Args:
        metrics: Which results to report: a key, a list of keys, or {name to report: key}; all when None.
        filename: The model file inside the checkpoint directory.
        frequency: Checkpoint every this many rounds (0, Ray's default: only at the end).
        checkpoint_at_end: Checkpoint after the last round (reporting its results once more, as Ray).
        results_postprocessing_fn: Changes the dict before it is reported (e.g. average cv folds).
    """

    def __init__(self, metrics: Metrics = None, filename: str = "model.json", frequency: int = 0,
                 checkpoint_at_end: bool = True,
                 results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__(metrics, frequency=frequency, checkpoint_at_end=checkpoint_at_end, filename=filename,
                         results_postprocessing_fn=results_postprocessing_fn)

    def logged_metrics(self, evals_log: Mapping[str, Mapping[str, list]]) -> dict[str, Any]:
        # Ray reports the last logged value as it is: under xgb.cv, the (mean, std) pair
        return {f"{data}-{name}": values[-1] for data, log in evals_log.items() for name, values in log.items()}

    @classmethod
    def get_model(cls, checkpoint: _session.Checkpoint, filename: str = "model.json") -> Any:
        return load_from(checkpoint, filename, _xgboost.load_booster)


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report the round's evaluation results, without checkpoints."""

    def __init__(self, metrics: Metrics = None,
                 results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__(metrics, frequency=0, checkpoint_at_end=False, results_postprocessing_fn=results_postprocessing_fn)
