"""The Keras callbacks of `ray.tune.integration.keras` (imports Keras)."""

from __future__ import annotations

from asynctune.integrations import keras as _keras

from ._report import Metrics

# Ray's names for Keras's hooks, as asynctune.integrations.keras names them
_HOOKS = {"epoch_end": "epoch_end", "batch_end": "train_batch_end", "train_batch_end": "train_batch_end",
          "test_end": "test_end"}


class TuneReportCheckpointCallback(_keras.TuneReportCheckpointCallback):
    """Report Keras's logs at the hook `on` (default: each epoch's end), and every `frequency`
    reports the model saved as `filename` (Keras 3's `.keras` format; load it with
    `asynctune.integrations.keras.load_checkpoint(checkpoint_dir, filename=...)`).

    Args:
        metrics: A log name, a list of them, or {name to report: log name}; all when None.
        filename: The model file inside the checkpoint directory (must end in .keras).
        frequency: Save the model with every this many reports (0: never).
        on: "epoch_end", "batch_end" (each training batch) or "test_end".
    """

    def __init__(self, metrics: Metrics = None, filename: str = "model.keras", frequency: int = 1,
                 on: str = "epoch_end") -> None:
        if on not in _HOOKS:
            raise ValueError(f"TuneReportCheckpointCallback: on must be one of {sorted(_HOOKS)}, got {on=}")
        super().__init__(metrics, on=_HOOKS[on], frequency=frequency, filename=filename)


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report Keras's logs at the hook `on`, without checkpoints."""

    def __init__(self, metrics: Metrics = None, on: str = "epoch_end") -> None:
        super().__init__(metrics, frequency=0, on=on)
