"""Ray's `ray.train` session functions and configs, the same objects as in `tune`; Ray Train's
distributed trainers are not mirrored."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._unsupported import module_getattr
# Trial side only: a trainable's `from ray import train` runs in every worker, so the configs (which
# import the driver's reporting) load on first use.
from ..tune import Checkpoint, get_checkpoint, get_context, report

if TYPE_CHECKING:
    from ..tune import CheckpointConfig, FailureConfig, Result, RunConfig, SyncConfig

_DRIVER_SIDE = ("CheckpointConfig", "FailureConfig", "Result", "RunConfig", "SyncConfig")
_TRAINERS = ("asynctune runs one process per trial: write the training loop as a function trainable(config) that "
             "calls tune.report, and give it GPUs with tune.with_resources")
_missing = module_getattr(__name__, {name: _TRAINERS for name in (
    "ScalingConfig", "DataConfig", "Trainer", "BaseTrainer", "DataParallelTrainer", "torch", "tensorflow",
    "lightning", "huggingface", "horovod", "get_dataset_shard")})
_SUBMODULES = ("xgboost", "lightgbm")  # their RayTrainReportCallback is the Tune callback


def __getattr__(name: str) -> Any:
    if name in _DRIVER_SIDE:
        from .. import tune
        return getattr(tune, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    return _missing(name)


__all__ = ["Checkpoint", "CheckpointConfig", "FailureConfig", "Result", "RunConfig", "SyncConfig", "get_checkpoint",
           "get_context", "report"]
