"""Ray's `ray.tune.integration.lightgbm`: LightGBM callbacks that report each boosting round to Tune.

    lgb.train(config, train_set, valid_sets=[test_set], valid_names=["eval"],
              callbacks=[TuneReportCheckpointCallback({"logloss": "eval-binary_logloss"})])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .. import _session
from ._report import Metrics, check_frequency, report_round, select, wants_checkpoint


class TuneReportCheckpointCallback:
    """Report the round's evaluation results (and every `frequency` rounds, and at the end, the
    model as a checkpoint): keys "<data>-<metric>" for `lgb.train`, "<data>-<metric>-mean" and
    "-stdv" for `lgb.cv`.

    Args:
        metrics: Which results to report: a key, a list of keys, or {name to report: key}; all when None.
        filename: The model file inside the checkpoint directory.
        frequency: Checkpoint every this many rounds (0: only at the end).
        checkpoint_at_end: Checkpoint after the last round.
        results_postprocessing_fn: Changes the dict before it is reported.
    """

    order = 20  # LightGBM runs callbacks by this attribute: after its own evaluation logging

    def __init__(self, metrics: Metrics = None, filename: str = "checkpoint", frequency: int = 1,
                 checkpoint_at_end: bool = True,
                 results_postprocessing_fn: Callable[[dict[str, float]], dict[str, float]] | None = None) -> None:
        check_frequency(frequency)
        self.metrics = metrics
        self.filename, self.frequency, self.checkpoint_at_end = filename, frequency, checkpoint_at_end
        self.results_postprocessing_fn = results_postprocessing_fn

    def __call__(self, env: Any) -> None:
        results = select(_evaluation_results(env.evaluation_result_list), self.metrics)
        if self.results_postprocessing_fn is not None:
            results = self.results_postprocessing_fn(results)
        done = env.iteration + 1 == env.end_iteration
        report_round(results, env.model, self.filename, checkpoint=wants_checkpoint(
            env.iteration + 1, self.frequency, done=done, at_end=self.checkpoint_at_end))

    @classmethod
    def get_model(cls, checkpoint: _session.Checkpoint, filename: str = "checkpoint") -> Any:
        import lightgbm
        with checkpoint.as_directory() as directory:
            return lightgbm.Booster(model_file=os.path.join(directory, filename))


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report the round's evaluation results, without checkpoints."""

    def __init__(self, metrics: Metrics = None, results_postprocessing_fn: Callable[[dict[str, float]], dict[str, float]] | None = None) -> None:
        super().__init__(metrics, frequency=0, checkpoint_at_end=False,
                         results_postprocessing_fn=results_postprocessing_fn)


def _evaluation_results(entries: Sequence[tuple]) -> dict[str, float]:
    """LightGBM's (data, metric, value, higher_is_better[, stdv]) entries as Ray names them."""
    results = {}
    for entry in entries:
        data, metric, value = entry[0], entry[1], entry[2]
        if len(entry) == 5:  # lgb.cv: mean and standard deviation over the folds
            results[f"{data}-{metric}-mean"] = float(value)
            results[f"{data}-{metric}-stdv"] = float(entry[4])
        else:
            results[f"{data}-{metric}"] = float(value)
    return results
