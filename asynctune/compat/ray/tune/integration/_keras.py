"""The Keras callbacks of `ray.tune.integration.keras` and `ray.air.integrations.keras` (imports Keras)."""

from __future__ import annotations

from collections.abc import Sequence

from asynctune.integrations import keras as _keras

from ..._unsupported import unsupported
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


class ReportCheckpointCallback(_keras.TuneReportCheckpointCallback):
    """Ray 2.x's Keras callback (`ray.air.integrations.keras`): report Keras's logs at the hooks
    `report_metrics_on`, with the model saved as `model.keras` at the hooks `checkpoint_on`.

    Example:
        >>> model.fit(x, y, validation_split=0.2, epochs=10,
        ...           callbacks=[ReportCheckpointCallback(metrics={"mean_accuracy": "val_accuracy"})])
        >>> with result.checkpoint.as_directory() as d:
        ...     model = keras.models.load_model(os.path.join(d, "model.keras"))

    Args:
        checkpoint_on: "epoch_end" (default), "batch_end"/"train_batch_end" or "test_end", or a
            list: the same hook as `report_metrics_on` (each report with a checkpoint), or [] for none.
        report_metrics_on: The hook to report at (one of those; default "epoch_end").
        metrics: A log name, a list of them, or {name to report: log name}; all when None.
    """

    def __init__(self, checkpoint_on: str | Sequence[str] = "epoch_end",
                 report_metrics_on: str | Sequence[str] = "epoch_end", metrics: Metrics = None) -> None:
        report_on, save_on = _hooks(report_metrics_on, "report_metrics_on"), _hooks(checkpoint_on, "checkpoint_on")
        if len(report_on) != 1 or save_on not in ([], report_on):
            unsupported(f"ReportCheckpointCallback(checkpoint_on={checkpoint_on!r}, "
                        f"report_metrics_on={report_metrics_on!r})",
                        "report at one hook, and checkpoint at that same hook (the default, both 'epoch_end') or "
                        "not at all (checkpoint_on=[])")
        super().__init__(metrics, on=_HOOKS[report_on[0]], frequency=1 if save_on else 0, filename="model.keras")


# Every Keras hook Ray's ReportCheckpointCallback takes; asynctune's callback reports at those of _HOOKS
_RAY_KERAS_HOOKS = frozenset(f"{when}_{edge}" for when in ("epoch", "train_batch", "test_batch", "predict_batch",
                                                           "train", "test", "predict") for edge in ("begin", "end"))


def _hooks(given: str | Sequence[str], argument: str) -> list[str]:
    hooks = [given] if isinstance(given, str) else list(given)
    for hook in hooks:
        if hook not in _HOOKS and hook not in _RAY_KERAS_HOOKS:
            raise ValueError(f"ReportCheckpointCallback: {argument}={hook!r} is not a Keras hook; use one of "
                             f"{sorted(_HOOKS)}")
        if hook not in _HOOKS:
            unsupported(f"ReportCheckpointCallback({argument}={hook!r})", f"use one of {sorted(_HOOKS)}")
    return sorted({_HOOKS[hook] for hook in hooks})
