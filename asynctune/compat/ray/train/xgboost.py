"""Ray's `ray.train.xgboost`: `RayTrainReportCallback`, Ray 2.10+'s name for the XGBoost callback
of `ray.tune.integration.xgboost` (the same class here, with its defaults and `get_model`); XGBoost
is imported when it is first used. Ray Train's `XGBoostTrainer` is not mirrored.

    callbacks=[RayTrainReportCallback({"loss": "eval-logloss"}, frequency=2)]
"""

from ..tune.integration._lazy import booster_train_getattr

__getattr__ = booster_train_getattr(__name__, "xgboost", "XGBoostTrainer")
