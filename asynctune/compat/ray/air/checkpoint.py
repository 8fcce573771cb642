"""Ray's `ray.air.checkpoint`."""

from . import Checkpoint

__all__ = ["Checkpoint"]
