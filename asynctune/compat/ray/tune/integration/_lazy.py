"""A Ray integration module whose names come from a private module imported on first use, so
`import asynctune.compat.ray` (or of the Ray module itself) never imports the framework."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..._unsupported import module_getattr


def lazy_getattr(module: str, implementation: str, names: Collection[str] | Mapping[str, str],
                 hints: Mapping[str, str]) -> Callable[[str], Any]:
    """A module __getattr__: `names` from `implementation` (relative to `module`'s package, or absolute;
    a mapping renames them), the Ray names in `hints` as clear errors."""
    fallback = module_getattr(module, hints)

    def __getattr__(name: str) -> Any:
        if name in names:
            source = names[name] if isinstance(names, Mapping) else name  # {Ray's name: the implementation's}
            return getattr(importlib.import_module(implementation, module.rpartition(".")[0]), source)
        return fallback(name)

    return __getattr__


def booster_train_getattr(module: str, library: str, trainer: str) -> Callable[[str], Any]:
    """`ray.train.<library>`'s __getattr__: `RayTrainReportCallback` is the Tune callback of
    `ray.tune.integration.<library>`; the library's Ray Train trainer is a clear error."""
    return lazy_getattr(module, f"asynctune.compat.ray.tune.integration.{library}",
                        {"RayTrainReportCallback": "TuneReportCheckpointCallback"},
                        {trainer: f"asynctune runs one process per trial: call {library}.train in a function "
                                  "trainable(config) with RayTrainReportCallback"})
