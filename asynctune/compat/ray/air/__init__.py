"""Ray AIR (`ray.air`), Ray's older home of the configs and session: configs under their new names."""

from .._unsupported import module_getattr
from ..tune import CheckpointConfig, FailureConfig, Result, RunConfig

__getattr__ = module_getattr(__name__, {
    "session": "use tune.report / tune.get_checkpoint (from asynctune.compat.ray import tune)",
    "ScalingConfig": "asynctune runs one process per trial: give resources with tune.with_resources",
})

__all__ = ["CheckpointConfig", "FailureConfig", "Result", "RunConfig"]
