"""Ray AIR (`ray.air`), Ray 2.0-2.6's home of the configs, the session and Checkpoint: the same
objects as in `tune` and `train`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._unsupported import module_getattr
# Trial side only (`from ray.air import session` runs in every worker); the configs load on first use.
from ..tune import Checkpoint
from . import session

if TYPE_CHECKING:
    from ..tune import CheckpointConfig, FailureConfig, Result, RunConfig

_DRIVER_SIDE = ("CheckpointConfig", "FailureConfig", "Result", "RunConfig")
_missing = module_getattr(__name__, {
    "ScalingConfig": "asynctune runs one process per trial: give resources with tune.with_resources",
})


def __getattr__(name: str) -> Any:
    if name in _DRIVER_SIDE:
        from .. import tune
        return getattr(tune, name)
    return _missing(name)


__all__ = ["Checkpoint", "CheckpointConfig", "FailureConfig", "Result", "RunConfig", "session"]
