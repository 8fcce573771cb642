"""PyTorch Lightning: report the logged metrics at a Lightning hook, with the trainer's checkpoint.

`pip install 'asynctune[lightning]'` (the `lightning` package; the older `pytorch_lightning`
works too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._common import checkpoint_file, metric_names, plain_filename, report_with_checkpoint, select_metrics

try:
    import lightning.pytorch as pl
except ImportError:  # the package's older name
    try:
        import pytorch_lightning as pl
    except ImportError as exc:
        raise ImportError("asynctune.integrations.lightning needs lightning: "
                          "pip install 'asynctune[lightning]'") from exc

_OWNER = "lightning TuneReportCheckpointCallback"
# The Lightning hooks a report can follow (each is `on_<hook>` of pl.Callback).
HOOKS = ("train_batch_end", "train_epoch_end", "validation_batch_end", "validation_epoch_end", "validation_end",
         "test_epoch_end", "test_end", "train_end", "fit_end")
CHECKPOINT_FILE = "checkpoint.ckpt"


class TuneReportCheckpointCallback(pl.Callback):
    """Reports the metrics the LightningModule logs (`self.log("val_loss", ...)`) to asynctune,
    with a checkpoint of the whole trainer state, at the Lightning hook `on=`.

    The default, `on="validation_end"`, reports once per validation run (once an epoch), where
    Lightning's own ModelCheckpoint saves, so each result is one epoch and `max_t` counts
    epochs. A scheduler's STOP or PAUSE ends `trainer.fit` there; resume with
    `trainer.fit(model, ckpt_path=get_checkpoint_path())`, which restores the weights, the
    optimizer and the epoch, so the trial goes on where it was.

    Example:
        >>> from asynctune.integrations.lightning import TuneReportCheckpointCallback, get_checkpoint_path
        >>> def train(config):
        ...     trainer = pl.Trainer(max_epochs=10, enable_progress_bar=False, logger=False,
        ...                          enable_checkpointing=False,
        ...                          callbacks=[TuneReportCheckpointCallback({"loss": "val_loss"})])
        ...     trainer.fit(MyModule(config), datamodule, ckpt_path=get_checkpoint_path())

    Args:
        metrics: None reports every metric logged so far; a name or a list reports those; a dict
            {reported name: logged name} renames them.
        on: The hook, or hooks, to report at (without `on_`): one of HOOKS.
        save_checkpoints: Save the trainer's checkpoint with each report (False: report only).
        filename: The checkpoint's file name inside asynctune's checkpoint directory.
    """

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, *,
                 on: str | Sequence[str] = "validation_end", save_checkpoints: bool = True,
                 filename: str = CHECKPOINT_FILE) -> None:
        self._names = metric_names(metrics, _OWNER)
        hooks = [on] if isinstance(on, str) else list(on) if isinstance(on, Sequence) else None
        if not hooks or any(h not in HOOKS for h in hooks):
            raise ValueError(f"{_OWNER}: on must be one of {HOOKS} or a list of them, got {on=}")
        self.on, self.save_checkpoints = hooks, bool(save_checkpoints)
        self.filename = plain_filename(filename, _OWNER)
        for hook in hooks:  # only the chosen hooks do anything
            setattr(self, f"on_{hook}", self._report_hook)

    def _report_hook(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if trainer.sanity_checking:  # Lightning's validation dry run before training: not a result
            return
        logged = {name: _as_float(value) for name, value in trainer.callback_metrics.items()}
        metrics = select_metrics({k: v for k, v in logged.items() if v is not None}, self._names, _OWNER)
        save = (lambda directory: trainer.save_checkpoint(os.path.join(directory, self.filename))) \
            if self.save_checkpoints else None
        report_with_checkpoint(metrics, save)


def get_checkpoint_path(checkpoint: Any = None, *, filename: str = CHECKPOINT_FILE) -> str | None:
    """The Lightning checkpoint file to resume from (for `trainer.fit(..., ckpt_path=)` or
    `LightningModule.load_from_checkpoint`): in `checkpoint`, or by default in the trial's
    `asynctune.get_checkpoint()`; None on a fresh start.

    Example:
        >>> model = MyModule.load_from_checkpoint(get_checkpoint_path(analysis.best_checkpoint))
    """
    return checkpoint_file(filename, checkpoint)


def _as_float(value: Any) -> float | None:
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):  # a tensor of several values is no metric
        return None
