"""Ray's `ray.tune.execution.placement_groups`."""

from .._placement import PlacementGroupFactory

__all__ = ["PlacementGroupFactory"]
