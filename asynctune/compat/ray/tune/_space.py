"""Ray's search space functions, with Ray's argument names, returning asynctune's domains."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from asynctune.core import space as _space


def uniform(lower: float, upper: float) -> Any:
    return _space.uniform(lower, upper)


def quniform(lower: float, upper: float, q: float) -> Any:
    return _space.quniform(lower, upper, q)


def loguniform(lower: float, upper: float, base: float = 10) -> Any:
    return _space.loguniform(lower, upper, base)


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Any:
    return _space.qloguniform(lower, upper, q, base)


def randn(mean: float = 0.0, sd: float = 1.0) -> Any:
    return _space.randn(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Any:
    return _space.qrandn(mean, sd, q)


def randint(lower: int, upper: int) -> Any:
    """An integer in [lower, upper): upper is exclusive, as in Ray."""
    return _space.randint(lower, upper)


def qrandint(lower: int, upper: int, q: int = 1) -> Any:
    """A multiple of q in [lower, upper]: upper is inclusive, as in Ray."""
    return _space.qrandint(lower, upper, q)


def lograndint(lower: int, upper: int, base: float = 10) -> Any:
    """An integer in [lower, upper) on a log scale (the base does not change the distribution)."""
    return _space.lograndint(lower, upper)


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Any:
    """A multiple of q in [lower, upper] on a log scale: upper is inclusive, as in Ray."""
    return _space.qlograndint(lower, upper, q, base)


def choice(categories: Sequence[Any]) -> Any:
    return _space.choice(categories)


def grid_search(values: Sequence[Any]) -> Any:
    return _space.grid_search(values)


def sample_from(func: Callable[[Any], Any]) -> Any:
    """A value computed from the rest of the config: `func(spec)`, where `spec.config.x` or
    `spec["config"]["x"]` reads another value, as in Ray (also `spec["x"]`)."""
    @functools.wraps(func)
    def with_rays_spec(config: Any) -> Any:
        return func(_RaySpec(config))

    return _space.sample_from(with_rays_spec)


class _RaySpec(Mapping):
    """What Ray passes to a sample_from function: the trial's spec, whose "config" is the config
    being built (the config's own keys are readable directly too)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def __getitem__(self, key: Any) -> Any:
        return self.config if key == "config" else self.config[key]

    def __getattr__(self, key: str) -> Any:
        if key == "config":  # not set yet (unpickling): never look it up on itself
            raise AttributeError(key)
        return getattr(self.config, key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.config)

    def __len__(self) -> int:
        return len(self.config)
