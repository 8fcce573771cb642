"""Ray's `ray.air.config`."""

from .._unsupported import module_getattr
from . import CheckpointConfig, FailureConfig, RunConfig

__getattr__ = module_getattr(__name__, {
    "ScalingConfig": "asynctune runs one process per trial: give resources with tune.with_resources"})

__all__ = ["CheckpointConfig", "FailureConfig", "RunConfig"]
