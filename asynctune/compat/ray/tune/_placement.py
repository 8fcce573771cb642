"""Ray's `PlacementGroupFactory`: a trial's resources as bundles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class PlacementGroupFactory:
    """Ray's resource bundles; asynctune places a trial on one machine, so the bundles are added up."""

    def __init__(self, bundles: Sequence[Mapping[str, float]], strategy: str = "PACK", **_: Any) -> None:
        if not bundles or not all(isinstance(b, Mapping) for b in bundles):
            raise ValueError(f"PlacementGroupFactory: bundles must be a non-empty list of dicts, got {bundles!r}")
        self.bundles = [dict(b) for b in bundles]
        self.strategy = strategy

    @property
    def required_resources(self) -> dict[str, float]:
        """Every bundle's resources added up (a property, as in Ray)."""
        total: dict[str, float] = {}
        for bundle in self.bundles:
            for key, value in bundle.items():
                total[key] = total.get(key, 0) + value
        return total

    @property
    def head_cpus(self) -> float:
        return self.bundles[0].get("CPU", self.bundles[0].get("cpu", 0))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupFactory) and (other.bundles, other.strategy) == (
            self.bundles, self.strategy)

    def __repr__(self) -> str:
        return f"PlacementGroupFactory({self.bundles!r}, strategy={self.strategy!r})"
