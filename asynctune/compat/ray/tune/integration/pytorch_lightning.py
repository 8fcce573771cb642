"""Ray's `ray.tune.integration.pytorch_lightning`: asynctune.integrations.lightning with Ray's
arguments; Lightning is imported when a callback is first used.

    trainer = pl.Trainer(callbacks=[TuneReportCheckpointCallback({"loss": "val_loss"}, on="validation_end")])
"""

from ._lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, "._lightning", ("TuneReportCheckpointCallback", "TuneReportCallback"), {
    "TuneCallback": "subclass asynctune.integrations.lightning.TuneReportCheckpointCallback, or call "
                    "tune.report(...) from your own Lightning callback"})
