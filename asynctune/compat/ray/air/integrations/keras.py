"""Ray 2.x's `ray.air.integrations.keras`: its `ReportCheckpointCallback` on
asynctune.integrations.keras (Keras 3, any backend); Keras is imported when the callback is first used.

    model.fit(x, y, callbacks=[ReportCheckpointCallback(metrics={"mean_accuracy": "val_accuracy"})])
"""

from ...tune.integration._lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, "asynctune.compat.ray.tune.integration._keras", ("ReportCheckpointCallback",), {})
