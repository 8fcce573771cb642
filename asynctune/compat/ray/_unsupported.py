"""Clear errors for the parts of Ray that asynctune.compat.ray does not mirror."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from ...errors import AsynctuneError

GUIDE = "see docs/migrating_from_ray.md"


class UnsupportedRayFeature(AsynctuneError, NotImplementedError):
    """A Ray name or argument that the compatibility layer knows but does not support.

    Not an AttributeError on purpose: `from ray.tune import X` would turn that into a bare
    "cannot import name" and lose the hint.
    """


def unsupported(what: str, instead: str) -> NoReturn:
    raise UnsupportedRayFeature(f"{what} is not supported by asynctune.compat.ray; {instead} ({GUIDE})")


def module_getattr(module: str, hints: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__: known Ray names raise with their asynctune way, others an
    AttributeError that says where the mirror ends."""
    ray_name = module.replace("asynctune.compat.", "")

    def __getattr__(name: str) -> Any:
        if name in hints:
            unsupported(f"{ray_name}.{name}", hints[name])
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}: asynctune.compat.ray mirrors only part "
                             f"of {ray_name}, and {name} is not in it; asynctune's own API is asynctune.run(...) "
                             f"({GUIDE})")

    return __getattr__
