"""Ray's `ray.tune.integration.lightgbm`: asynctune.integrations.lightgbm with Ray's arguments,
defaults and metric names.

    lgb.train(config, train_set, valid_sets=[test_set], valid_names=["eval"],
              callbacks=[TuneReportCheckpointCallback({"logloss": "eval-binary_logloss"})])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from asynctune.integrations import lightgbm as _lightgbm
from .. import _session
from ._report import Metrics, load_from


class TuneReportCheckpointCallback(_lightgbm.TuneReportCheckpointCallback):
    """Report the round's evaluation results (and every `frequency` rounds, and at the end, the
    model as a checkpoint): keys "<data>-<metric>" for `lgb.train`, "<data>-<metric>-mean" and
    "-stdv" for `lgb.cv`, as Ray names them.

    Args:
        metrics: Which results to report: a key, a list of keys, or {name to report: key}; all when None.
        filename: The model file inside the checkpoint directory.
        frequency: Checkpoint every this many rounds (0, Ray's default: only at the end).
        checkpoint_at_end: Checkpoint after the last round.
        results_postprocessing_fn: Changes the dict before it is reported.
    """

    def __init__(self, metrics: Metrics = None, filename: str = "model.txt", frequency: int = 0,
                 checkpoint_at_end: bool = True,
                 results_postprocessing_fn: Callable[[dict[str, float]], dict[str, float]] | None = None) -> None:
        super().__init__(metrics, frequency=frequency, checkpoint_at_end=checkpoint_at_end, filename=filename,
                         results_postprocessing_fn=results_postprocessing_fn)

    def logged_metrics(self, entries: Sequence[tuple]) -> dict[str, float]:
        results = {}
        for entry in entries:
            name = f"{entry[0]}-{entry[1]}"
            if len(entry) == 5:  # lgb.cv: Ray reports the folds' mean and standard deviation
                results[f"{name}-mean"], results[f"{name}-stdv"] = float(entry[2]), float(entry[4])
            else:
                results[name] = float(entry[2])
        return results

    @classmethod
    def get_model(cls, checkpoint: _session.Checkpoint, filename: str = "model.txt") -> Any:
        return load_from(checkpoint, filename, _lightgbm.load_booster)


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report the round's evaluation results, without checkpoints."""

    def __init__(self, metrics: Metrics = None,
                 results_postprocessing_fn: Callable[[dict[str, float]], dict[str, float]] | None = None) -> None:
        super().__init__(metrics, frequency=0, checkpoint_at_end=False,
                         results_postprocessing_fn=results_postprocessing_fn)
