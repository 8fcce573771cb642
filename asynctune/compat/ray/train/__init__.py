"""Ray's `ray.train` session functions and configs, the same objects as in `tune`; Ray Train's
distributed trainers are not mirrored."""

from __future__ import annotations

from ..tune import (
    Checkpoint, CheckpointConfig, FailureConfig, Result, RunConfig, SyncConfig, get_checkpoint, get_context, report,
)
from .._unsupported import module_getattr

_TRAINERS = ("asynctune runs one process per trial: write the training loop as a function trainable(config) that "
             "calls tune.report, and give it GPUs with tune.with_resources")
__getattr__ = module_getattr(__name__, {name: _TRAINERS for name in (
    "ScalingConfig", "DataConfig", "Trainer", "BaseTrainer", "DataParallelTrainer", "torch", "tensorflow",
    "lightgbm", "xgboost", "lightning", "huggingface", "horovod", "get_dataset_shard")})

__all__ = ["Checkpoint", "CheckpointConfig", "FailureConfig", "Result", "RunConfig", "SyncConfig", "get_checkpoint",
           "get_context", "report"]
