"""Ray's `ray.train.lightgbm`: `RayTrainReportCallback`, Ray 2.10+'s name for the LightGBM callback
of `ray.tune.integration.lightgbm` (the same class here, with its defaults and `get_model`); LightGBM
is imported when it is first used. Ray Train's `LightGBMTrainer` is not mirrored.

    callbacks=[RayTrainReportCallback({"loss": "eval-binary_logloss"}, frequency=2)]
"""

from ..tune.integration._lazy import booster_train_getattr

__getattr__ = booster_train_getattr(__name__, "lightgbm", "LightGBMTrainer")
