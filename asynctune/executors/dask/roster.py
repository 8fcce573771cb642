"""The Dask workers a DaskExecutor knows of, as hosts: names, live addresses, resources.

A host is a Dask worker's name (a worker its nanny restarts keeps its name, under a new
address); a placement on it goes to the live address of that name. Addresses the scheduler
removed are remembered, so that no trial is placed at a dead worker's address again: Dask would
hold a task pinned there forever ("no-worker").
"""

from __future__ import annotations

import math
from typing import Any

from ...core.resources import GPU, HostInventory, Placement


class WorkerRoster:
    """The scheduler's workers as the driver last saw them.

    Example:
        >>> roster = WorkerRoster()
        >>> roster.note({"tls://10.0.0.1:4000": {"name": "gpu-3", "nthreads": 1, "resources": {"GPU": 1}}})
        >>> roster.address_of("gpu-3")
        'tls://10.0.0.1:4000'
    """

    def __init__(self) -> None:
        self._info: dict[str, dict[str, Any]] = {}  # live worker address -> the scheduler's info on it
        self._address_of: dict[str, str] = {}  # host (the worker's name) -> its live address
        self._removed: set[str] = set()

    def note(self, workers: dict[str, dict[str, Any]]) -> None:
        """Learn the workers of the scheduler's `identity()` (a removed address stays removed)."""
        for address, info in workers.items():
            if address not in self._removed:
                self._info[address] = info
                self._address_of[host_name(address, info)] = address

    def remove(self, address: str) -> bool:
        """The scheduler removed this worker; False when it was already known to be gone."""
        if address in self._removed:
            return False
        self._removed.add(address)
        info = self._info.pop(address, None)
        if info is not None and self._address_of.get(host_name(address, info)) == address:
            del self._address_of[host_name(address, info)]
        return True

    def rejoined(self, address: str) -> None:
        """A worker joined at `address` (the event names no worker name: note() learns it)."""
        self._removed.discard(address)

    def is_removed(self, address: str) -> bool:
        return address in self._removed

    def address_of(self, host: str) -> str | None:
        """The live address of the worker named `host`; None while no worker of that name is up."""
        return self._address_of.get(host)

    def inventories(self) -> list[HostInventory]:
        return sorted((worker_inventory(address, info) for address, info in self._info.items()),
                      key=lambda inventory: inventory.name)

    def resources_for(self, placement: Placement) -> dict[str, float]:
        """The placement in Dask's terms, for the resources the workers declare."""
        declared = {name for info in self._info.values() for name in info.get("resources", {})}
        resources: dict[str, float] = {}
        gpu = sum(fraction for _, fraction in placement.gpus)
        if gpu > 0:
            resources["GPU"] = gpu
        if "CPU" in declared and placement.cpu > 0:
            resources["CPU"] = placement.cpu
        return resources


def host_name(address: str, info: dict[str, Any]) -> str:
    name = info.get("name")
    return address if name is None or name == "" else str(name)


def worker_inventory(address: str, info: dict[str, Any]) -> HostInventory:
    """One Dask worker as a host, named by the worker's name: its CPU resource (else its
    threads) and its GPU resource."""
    resources = info.get("resources", {}) or {}
    cpus = float(resources.get("CPU", info.get("nthreads", 1)))
    gpus = [GPU(index=i) for i in range(math.ceil(float(resources.get("GPU", 0)) - 1e-9))]
    return HostInventory(name=host_name(address, info), cpus=cpus, gpus=gpus,
                         memory_mb=float(info.get("memory_limit") or 0) / 2**20)
