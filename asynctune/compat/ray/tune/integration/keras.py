"""Ray's `ray.tune.integration.keras`: asynctune.integrations.keras with Ray's arguments; Keras is
imported when a callback is first used.

    model.fit(x, y, validation_split=0.2, callbacks=[TuneReportCallback({"loss": "val_loss"})])
"""

from ._lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, "._keras", ("TuneReportCheckpointCallback", "TuneReportCallback"), {
    "TuneCallback": "subclass asynctune.integrations.keras.TuneReportCheckpointCallback, or call "
                    "tune.report(...) from your own Keras callback"})
