"""Ray's `ray.tune.execution.placement_groups`."""

from .._trainables import PlacementGroupFactory

__all__ = ["PlacementGroupFactory"]
