"""Ray's `ray.tune.trainable`: the class API and `with_parameters`, the same objects as in `tune`."""

from ._trainables import Trainable, with_parameters

__all__ = ["Trainable", "with_parameters"]
