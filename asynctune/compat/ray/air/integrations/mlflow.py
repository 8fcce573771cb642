"""Ray's `ray.air.integrations.mlflow`: not mirrored; docs/logging.md shows an MLflow logger as an
asynctune Callback."""

from ..._unsupported import module_getattr

_HOW = "write an asynctune Callback that logs to MLflow (docs/logging.md has one), or call mlflow in the trainable"
__getattr__ = module_getattr(__name__, {"MLflowLoggerCallback": _HOW, "setup_mlflow": _HOW})
