"""Ray's `ray.tune.integration.lightgbm`: LightGBM callbacks that report each boosting round to Tune.

    lgb.train(config, train_set, valid_sets=[test_set], valid_names=["eval"],
              callbacks=[TuneReportCheckpointCallback({"logloss": "eval-binary_logloss"})])
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _session


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

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, filename: str = "checkpoint",
                 frequency: int = 1, checkpoint_at_end: bool = True,
                 results_postprocessing_fn: Callable[[dict[str, float]], dict[str, float]] | None = None) -> None:
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 0:
            raise ValueError(f"TuneReportCheckpointCallback: frequency must be an integer >= 0, got {frequency!r}")
        self.metrics = [metrics] if isinstance(metrics, str) else metrics
        self.filename, self.frequency, self.checkpoint_at_end = filename, frequency, checkpoint_at_end
        self.results_postprocessing_fn = results_postprocessing_fn

    def __call__(self, env: Any) -> None:
        results = self._selected(_evaluation_results(env.evaluation_result_list))
        if self.results_postprocessing_fn is not None:
            results = self.results_postprocessing_fn(results)
        done = env.iteration + 1 == env.end_iteration
        checkpoint_now = (self.frequency and (env.iteration + 1) % self.frequency == 0) or (
            done and self.checkpoint_at_end)
        if checkpoint_now and hasattr(env.model, "save_model"):
            with tempfile.TemporaryDirectory() as directory:
                env.model.save_model(os.path.join(directory, self.filename))
                _session.report(results, checkpoint=_session.Checkpoint.from_directory(directory))
        else:
            _session.report(results)

    def _selected(self, results: dict[str, float]) -> dict[str, float]:
        if self.metrics is None:
            return results
        if isinstance(self.metrics, Mapping):
            return {name: results[key] for name, key in self.metrics.items()}
        return {key: results[key] for key in self.metrics}

    @classmethod
    def get_model(cls, checkpoint: _session.Checkpoint, filename: str = "checkpoint") -> Any:
        import lightgbm
        with checkpoint.as_directory() as directory:
            return lightgbm.Booster(model_file=os.path.join(directory, filename))


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report the round's evaluation results, without checkpoints."""

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None,
                 results_postprocessing_fn: Callable[[dict[str, float]], dict[str, float]] | None = None) -> None:
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
