"""The Lightning callbacks of `ray.tune.integration.pytorch_lightning` (imports Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

from asynctune.integrations import lightning as _lightning

from ._report import Metrics


class TuneReportCheckpointCallback(_lightning.TuneReportCheckpointCallback):
    """Report the metrics the LightningModule logged at the hook `on` (default: after each
    validation run), with the trainer's checkpoint as `filename` unless `save_checkpoints=False`.
    Resume with `trainer.fit(..., ckpt_path=os.path.join(checkpoint_dir, filename))`.

    Args:
        metrics: A logged name, a list of them, or {name to report: logged name}; all when None.
        filename: The Lightning checkpoint file inside the checkpoint directory.
        save_checkpoints: Save a checkpoint with each report.
        on: A Lightning hook without `on_` (or a list of them), e.g. "validation_end", "train_epoch_end".
    """

    def __init__(self, metrics: Metrics = None, filename: str = "checkpoint", save_checkpoints: bool = True,
                 on: str | Sequence[str] = "validation_end") -> None:
        super().__init__(metrics, on=on, save_checkpoints=save_checkpoints, filename=filename)


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report the logged metrics at the hook `on`, without checkpoints (deprecated in Ray)."""

    def __init__(self, metrics: Metrics = None, on: str | Sequence[str] = "validation_end") -> None:
        super().__init__(metrics, save_checkpoints=False, on=on)
