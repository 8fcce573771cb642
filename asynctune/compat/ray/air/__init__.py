"""Ray AIR (`ray.air`), Ray 2.0-2.6's home of the configs, the session and Checkpoint: the same
objects as in `tune` and `train`."""

from .._unsupported import module_getattr
from ..tune import Checkpoint, CheckpointConfig, FailureConfig, Result, RunConfig
from . import session

__getattr__ = module_getattr(__name__, {
    "ScalingConfig": "asynctune runs one process per trial: give resources with tune.with_resources",
})

__all__ = ["Checkpoint", "CheckpointConfig", "FailureConfig", "Result", "RunConfig", "session"]
