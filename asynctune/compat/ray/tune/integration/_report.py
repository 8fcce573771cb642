"""What Ray's framework callbacks share: pick the metrics, report a round, with the model as a checkpoint."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from .. import _session

Metrics = str | Sequence[str] | Mapping[str, str] | None


def check_frequency(frequency: Any) -> None:
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 0:
        raise ValueError(f"TuneReportCheckpointCallback: frequency must be an integer >= 0, got {frequency!r}")


def select(results: dict[str, Any], metrics: Metrics) -> dict[str, Any]:
    """All results (None), some keys, or {name to report: key}."""
    if metrics is None:
        return results
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        return {name: results[key] for name, key in metrics.items()}
    return {key: results[key] for key in metrics}


def report_round(results: dict[str, Any], model: Any, filename: str, *, checkpoint: bool) -> None:
    """One round's results; with `checkpoint`, the model saved as `filename` in a checkpoint."""
    if checkpoint and hasattr(model, "save_model"):
        with tempfile.TemporaryDirectory() as directory:
            model.save_model(os.path.join(directory, filename))
            _session.report(results, checkpoint=_session.Checkpoint.from_directory(directory))
    else:
        _session.report(results)


def wants_checkpoint(round_number: int, frequency: int, *, done: bool, at_end: bool) -> bool:
    return bool(frequency and round_number % frequency == 0) or (done and at_end)
