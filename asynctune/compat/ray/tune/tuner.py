"""Ray's `ray.tune.tuner`."""

from ._tuner import Tuner

__all__ = ["Tuner"]
