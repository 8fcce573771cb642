"""Keras 3: report each epoch's logs, with the model (weights and optimizer) as checkpoint.

`pip install 'asynctune[keras]'` and a backend (torch, jax or tensorflow; `KERAS_BACKEND` picks it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._common import (
    checkpoint_file, metric_names, plain_filename, positive_int_or_zero, report_with_checkpoint, require,
    select_metrics,
)

keras = require("keras", "keras", "asynctune.integrations.keras")

_OWNER = "keras TuneReportCheckpointCallback"
HOOKS = ("epoch_end", "train_batch_end", "test_end")
_PROGRESS_FILE = "asynctune_keras.json"  # the epochs done, for model.fit(initial_epoch=)


class TuneReportCheckpointCallback(keras.callbacks.Callback):
    """Reports the logs of each epoch (`loss`, `val_loss`, `val_accuracy`, ...) to asynctune, and
    saves the model with them (architecture, weights and optimizer state, in one `.keras` file).

    Each epoch is one result, so `max_t` counts epochs. A scheduler's STOP or PAUSE ends
    `model.fit` there; `load_checkpoint()` gives back the model and the epoch to go on from
    (`model.fit(..., initial_epoch=)`), so a paused, retried or resumed trial continues.

    Example:
        >>> from asynctune.integrations.keras import TuneReportCheckpointCallback, load_checkpoint
        >>> def train(config):
        ...     model, initial_epoch = load_checkpoint()
        ...     model = model or build_and_compile(config)
        ...     model.fit(x, y, validation_split=0.2, epochs=20, initial_epoch=initial_epoch, verbose=0,
        ...               callbacks=[TuneReportCheckpointCallback({"loss": "val_loss"})])

    Args:
        metrics: None reports every log; a name or a list reports those; a dict
            {reported name: Keras's name} renames them.
        on: The hook to report at (without `on_`): one of HOOKS.
        frequency: Save the model with every `frequency`-th report (0: never).
        filename: The model's file inside the checkpoint (must end in `.keras`).
    """

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, *, on: str = "epoch_end",
                 frequency: int = 1, filename: str = "model.keras") -> None:
        super().__init__()
        self._names = metric_names(metrics, _OWNER)
        if on not in HOOKS:
            raise ValueError(f"{_OWNER}: on must be one of {HOOKS}, got {on=}")
        self.frequency = positive_int_or_zero(frequency, "frequency", _OWNER)
        self.filename = plain_filename(filename, _OWNER)
        if not filename.endswith(".keras"):
            raise ValueError(f"{_OWNER}: filename must end in .keras (Keras 3's format), got {filename=}")
        self.on = on
        self._reports = 0
        self._epoch = 0  # the epochs completed so far in this fit

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch = epoch + 1
        if self.on == "epoch_end":
            self._report(logs)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.on == "train_batch_end":
            self._report(logs)

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.on == "test_end":
            self._report(logs)

    def _report(self, logs: Mapping[str, Any] | None) -> None:
        logged = {k: float(v) for k, v in (logs or {}).items() if _is_scalar(v)}
        metrics = select_metrics(logged, self._names, _OWNER)
        self._reports += 1
        due = self.frequency > 0 and self._reports % self.frequency == 0
        report_with_checkpoint(metrics, self._save if due else None)

    def _save(self, directory: str) -> None:
        self.model.save(os.path.join(directory, self.filename))
        with open(os.path.join(directory, _PROGRESS_FILE), "w") as f:
            json.dump({"epoch": self._epoch}, f)


def load_checkpoint(checkpoint: Any = None, *, filename: str = "model.keras") -> tuple[Any, int]:
    """The model saved in a checkpoint (default: the trial's `asynctune.get_checkpoint()`) and the
    epochs it had done, for `model.fit(initial_epoch=)`; `(None, 0)` on a fresh start.

    Example:
        >>> model, _ = load_checkpoint(analysis.best_checkpoint)
    """
    path = checkpoint_file(filename, checkpoint)
    if path is None:
        return None, 0
    with open(os.path.join(os.path.dirname(path), _PROGRESS_FILE)) as f:
        epoch = int(json.load(f)["epoch"])
    return keras.models.load_model(path), epoch


def _is_scalar(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
