"""Resources a trial asks for, what each host has, and where a trial is placed.

This module is data and arithmetic only: the executors report host inventories, the
controller asks a `ResourcePool` for a `Placement` before starting a trial and gives it back
when the trial stops running.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

_EPS = 1e-9


@dataclass(frozen=True)
class Resources:
    """What one trial needs: CPU slots and (fractions of) GPUs.

    Args:
        cpu: CPU slots (may be fractional, e.g. 0.5 for I/O-bound trials).
        gpu: Number of GPUs; a fraction below 1 shares one GPU (0.5 puts two trials on it).
        gpu_memory_mb: GPU memory the trial needs on the GPU it gets, if known.
    """

    cpu: float = 1.0
    gpu: float = 0.0
    gpu_memory_mb: float | None = None

    def __post_init__(self) -> None:
        if not self.cpu >= 0:
            raise ValueError(f"resources: cpu must be >= 0, got cpu={self.cpu!r}")
        if not self.gpu >= 0:
            raise ValueError(f"resources: gpu must be >= 0, got gpu={self.gpu!r}")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise ValueError(f"resources: more than one GPU must be a whole number, got gpu={self.gpu!r}")
        if self.gpu_memory_mb is not None and not self.gpu_memory_mb > 0:
            raise ValueError(f"resources: gpu_memory_mb must be > 0, got {self.gpu_memory_mb!r}")
        if self.gpu_memory_mb is not None and self.gpu == 0:
            raise ValueError("resources: gpu_memory_mb needs gpu > 0")

    @classmethod
    def parse(cls, spec: Resources | Mapping[str, Any] | None) -> Resources:
        if spec is None:
            return cls()
        if isinstance(spec, Resources):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(f"resources_per_trial must be a dict like {{'cpu': 1, 'gpu': 0.5}}, got {spec!r}")
        unknown = set(spec) - {"cpu", "gpu", "gpu_memory_mb"}
        if unknown:
            raise ValueError(f"resources_per_trial: unknown keys {sorted(unknown)}; known: cpu, gpu, gpu_memory_mb")
        return cls(cpu=float(spec.get("cpu", 1)), gpu=float(spec.get("gpu", 0)),
                   gpu_memory_mb=spec.get("gpu_memory_mb"))

    def as_dict(self) -> dict[str, float]:
        out = {"cpu": self.cpu, "gpu": self.gpu}
        if self.gpu_memory_mb is not None:
            out["gpu_memory_mb"] = self.gpu_memory_mb
        return out


ResourcesSpec = Resources | Mapping[str, Any] | Callable[[dict[str, Any]], Any] | None


@dataclass
class GPU:
    """One GPU of a host as NVML reports it."""

    index: int
    uuid: str = ""
    name: str = ""
    memory_total_mb: float = 0.0
    memory_free_mb: float = 0.0
    utilization: float = 0.0  # percent


@dataclass
class HostInventory:
    """What a host offers to trials."""

    name: str
    cpus: float
    gpus: list[GPU] = field(default_factory=list)
    memory_mb: float = 0.0


def local_inventory(*, cpus: float | None = None) -> HostInventory:
    """This machine: its CPUs (psutil) and its GPUs (see asynctune.gpu, when present)."""
    from . import gpu as gpu_module

    count = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                           else psutil.cpu_count() or 1)
    return HostInventory(name="localhost", cpus=float(count), gpus=gpu_module.probe_gpus(),
                         memory_mb=psutil.virtual_memory().total / 2**20)


@dataclass
class Placement:
    """Where a trial runs: a host, CPU slots, and (GPU index, fraction) pairs."""

    host: str
    cpu: float
    gpus: list[tuple[int, float]] = field(default_factory=list)

    @property
    def gpu_ids(self) -> list[int]:
        return [index for index, _ in self.gpus]

    def env(self) -> dict[str, str]:
        """Environment for the worker: frameworks then see only the GPUs placed on."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in self.gpu_ids)}

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "cpu": self.cpu, "gpus": [list(g) for g in self.gpus]}


class ResourcePool:
    """Bookkeeping of free CPU slots and GPU fractions over hosts; never over-commits.

    Args:
        hosts: The inventories of the hosts trials may run on.
        policy: "pack" fills a partly used GPU before opening another (default); "spread"
            puts each trial on the least loaded GPU.
    """

    def __init__(self, hosts: list[HostInventory], *, policy: str = "pack") -> None:
        if policy not in ("pack", "spread"):
            raise ValueError(f"placement policy must be 'pack' or 'spread', got {policy=}")
        if not hosts:
            raise ValueError("ResourcePool needs at least one host")
        self.hosts = {h.name: h for h in hosts}
        self.policy = policy
        self._cpu_used = {h.name: 0.0 for h in hosts}
        self._gpu_used = {(h.name, g.index): 0.0 for h in hosts for g in h.gpus}

    def check(self, resources: Resources) -> None:
        """Raise ValueError when no host could ever hold this request."""
        for host in self.hosts.values():
            if resources.cpu <= host.cpus + _EPS and resources.gpu <= len(host.gpus) + _EPS and (
                resources.gpu_memory_mb is None
                or any(g.memory_total_mb >= resources.gpu_memory_mb for g in host.gpus)
            ):
                return
        have = ", ".join(f"{h.name}: {h.cpus:g} CPUs, {len(h.gpus)} GPUs" for h in self.hosts.values())
        raise ValueError(f"resources_per_trial {resources.as_dict()} can never fit on any host ({have})")

    def acquire(self, resources: Resources) -> Placement | None:
        """A placement for the request, or None if it does not fit now."""
        for name, host in self.hosts.items():
            if self._cpu_used[name] + resources.cpu > host.cpus + _EPS:
                continue
            gpus = self._pick_gpus(host, resources)
            if gpus is None:
                continue
            self._cpu_used[name] += resources.cpu
            for index, fraction in gpus:
                self._gpu_used[(name, index)] += fraction
            return Placement(name, resources.cpu, gpus)
        return None

    def release(self, placement: Placement) -> None:
        self._cpu_used[placement.host] = max(0.0, self._cpu_used[placement.host] - placement.cpu)
        for index, fraction in placement.gpus:
            key = (placement.host, index)
            self._gpu_used[key] = max(0.0, self._gpu_used[key] - fraction)

    def capacity(self, resources: Resources) -> int:
        """How many trials of this size fit at once on an empty pool (for max concurrency)."""
        total = 0
        for host in self.hosts.values():
            by_cpu = int((host.cpus + _EPS) // resources.cpu) if resources.cpu > 0 else 10**6
            if resources.gpu > 0:
                per_gpu = int((1 + _EPS) // resources.gpu) if resources.gpu < 1 else 1
                by_gpu = len(host.gpus) * per_gpu if resources.gpu <= 1 else len(host.gpus) // int(resources.gpu)
                total += min(by_cpu, by_gpu)
            else:
                total += by_cpu
        return total

    def _pick_gpus(self, host: HostInventory, resources: Resources) -> list[tuple[int, float]] | None:
        if resources.gpu == 0:
            return []
        def free(g: GPU) -> float:
            return 1.0 - self._gpu_used[(host.name, g.index)]
        fits_memory = [g for g in host.gpus if resources.gpu_memory_mb is None
                       or g.memory_free_mb >= resources.gpu_memory_mb or g.memory_total_mb == 0]
        if resources.gpu < 1:
            usable = [g for g in fits_memory if free(g) + _EPS >= resources.gpu]
            if not usable:
                return None
            if self.policy == "pack":  # the fullest GPU that still fits, then the freest memory
                usable.sort(key=lambda g: (free(g), -g.memory_free_mb, g.utilization, g.index))
            else:
                usable.sort(key=lambda g: (-free(g), g.utilization, -g.memory_free_mb, g.index))
            return [(usable[0].index, resources.gpu)]
        whole = [g for g in fits_memory if free(g) >= 1 - _EPS]
        whole.sort(key=lambda g: (g.utilization, -g.memory_free_mb, g.index))
        need = int(resources.gpu)
        if len(whole) < need:
            return None
        return [(g.index, 1.0) for g in whole[:need]]
