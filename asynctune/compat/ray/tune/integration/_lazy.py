"""A Ray integration module whose names come from a private module imported on first use, so
`import asynctune.compat.ray` (or of the Ray module itself) never imports the framework."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..._unsupported import module_getattr


def lazy_getattr(module: str, implementation: str, names: Collection[str],
                 hints: Mapping[str, str]) -> Callable[[str], Any]:
    """A module __getattr__: `names` from `implementation` (relative to `module`'s package, or absolute), the
    Ray names in `hints` as clear errors."""
    fallback = module_getattr(module, hints)

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(implementation, module.rpartition(".")[0]), name)
        return fallback(name)

    return __getattr__
