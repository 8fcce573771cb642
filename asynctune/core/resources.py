"""Resources a trial asks for, what each host has, and where a trial is placed.

This module is data and arithmetic: the executors report host inventories, the controller
asks a `ResourcePool` for a `Placement` before starting a trial and gives it back when the
trial stops running. The only live input is an optional, rate-limited reading of each GPU's
free memory and utilization (NVML on the local host), because a workstation is often shared
with people who do not go through asynctune.
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from .gpu import GPU, NvmlReader, why_no_gpu  # GPU is re-exported here for existing importers


logger = logging.getLogger(__name__)

_EPS = 1e-9
# capacity() of a request that needs neither CPUs nor GPUs: nothing bounds it.
UNBOUNDED = 2**31 - 1
_KEYS = ("cpu", "gpu", "gpu_memory_mb")


@dataclass(frozen=True)
class Resources:
    """What one trial needs: CPU slots, (fractions of) GPUs, and GPU memory per GPU.

    Example:
        >>> Resources.parse({"cpu": 2, "gpu": 0.5, "gpu_memory_mb": 8000})
        Resources(cpu=2.0, gpu=0.5, gpu_memory_mb=8000.0)

    Args:
        cpu: CPU slots (may be fractional, e.g. 0.5 for I/O-bound trials).
        gpu: Number of GPUs; a fraction below 1 shares one GPU (0.5 puts two trials on it).
            More than one GPU must be a whole number.
        gpu_memory_mb: Memory the trial needs free on each GPU it gets; a GPU with less free
            memory (live reading, less what other trials placed there reserved) is skipped.
    """

    cpu: float = 1.0
    gpu: float = 0.0
    gpu_memory_mb: float | None = None

    def __post_init__(self) -> None:
        for key in _KEYS:
            value = getattr(self, key)
            if value is None and key == "gpu_memory_mb":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"resources: {key} must be a finite number, got {key}={value!r}")
        if self.cpu < 0:
            raise ValueError(f"resources: cpu must be >= 0, got cpu={self.cpu!r}")
        if self.gpu < 0:
            raise ValueError(f"resources: gpu must be >= 0, got gpu={self.gpu!r}")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise ValueError(f"resources: more than one GPU must be a whole number, got gpu={self.gpu!r}")
        if self.gpu_memory_mb is not None and self.gpu_memory_mb <= 0:
            raise ValueError(f"resources: gpu_memory_mb must be > 0, got gpu_memory_mb={self.gpu_memory_mb!r}")
        if self.gpu_memory_mb is not None and self.gpu == 0:
            raise ValueError(f"resources: gpu_memory_mb={self.gpu_memory_mb!r} needs gpu > 0, got gpu=0")
        # Normalise ints to floats so that equal requests compare and print alike.
        object.__setattr__(self, "cpu", float(self.cpu))
        object.__setattr__(self, "gpu", float(self.gpu))
        if self.gpu_memory_mb is not None:
            object.__setattr__(self, "gpu_memory_mb", float(self.gpu_memory_mb))

    @classmethod
    def parse(cls, spec: Resources | Mapping[str, Any] | None) -> Resources:
        """A Resources from a dict like {"cpu": 1, "gpu": 0.5}, a Resources, or None (1 CPU)."""
        if spec is None:
            return cls()
        if isinstance(spec, Resources):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"resources_per_trial must be a dict like {{'cpu': 1, 'gpu': 0.5}}, a Resources, "
                f"a callable of the config or None, got {spec!r}")
        unknown = sorted(str(k) for k in spec if k not in _KEYS)
        if unknown:
            raise ValueError(f"resources_per_trial: unknown keys {unknown} in {dict(spec)!r}; "
                             f"known: {', '.join(_KEYS)}")
        return cls(cpu=spec.get("cpu", 1.0), gpu=spec.get("gpu", 0.0), gpu_memory_mb=spec.get("gpu_memory_mb"))

    @property
    def gpu_count(self) -> int:
        """How many distinct GPUs the request touches (a fraction touches one)."""
        return math.ceil(self.gpu - _EPS) if self.gpu > 0 else 0

    def as_dict(self) -> dict[str, float]:
        out = {"cpu": self.cpu, "gpu": self.gpu}
        if self.gpu_memory_mb is not None:
            out["gpu_memory_mb"] = self.gpu_memory_mb
        return out


ResourcesSpec = Resources | Mapping[str, Any] | Callable[[dict[str, Any]], Any] | None


def resolve_resources(spec: ResourcesSpec, config: dict[str, Any]) -> Resources:
    """The resources of one trial: `spec` itself, or what `spec(config)` returns.

    Example:
        >>> resolve_resources(lambda c: {"gpu": 1 if c["model"] == "big" else 0.5}, {"model": "big"})
        Resources(cpu=1.0, gpu=1.0, gpu_memory_mb=None)

    Args:
        spec: A Resources, a dict like {"cpu": 1, "gpu": 0.5}, None (one CPU), or a callable
            that takes the trial's config and returns one of those.
        config: The trial's config, passed to a callable spec.
    """
    if callable(spec) and not isinstance(spec, (Resources, Mapping)):
        try:
            value = spec(config)
        except Exception as exc:
            raise ValueError(f"resources_per_trial callable {spec!r} raised on config {config!r}: "
                             f"{type(exc).__name__}: {exc}") from exc
        try:
            return Resources.parse(value)
        except ValueError as exc:
            raise ValueError(f"resources_per_trial callable {spec!r} returned {value!r} for config "
                             f"{config!r}: {exc}") from exc
    return Resources.parse(spec)


@dataclass
class HostInventory:
    """What a host offers to trials.

    Args:
        name: The host's name (as the executor knows it).
        cpus: CPU slots trials may use on it.
        gpus: Its GPUs, as last read.
        memory_mb: Its RAM.
        read_gpus: A live reading of the same GPUs (fresh free memory and utilization), used
            by ResourcePool at placement time; None when there is nothing to read.
    """

    name: str
    cpus: float
    gpus: list[GPU] = field(default_factory=list)
    memory_mb: float = 0.0
    read_gpus: Callable[[], list[GPU]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.cpus >= 0:
            raise ValueError(f"host {self.name!r}: cpus must be >= 0, got cpus={self.cpus!r}")
        indices = [g.index for g in self.gpus]
        if len(set(indices)) != len(indices):
            raise ValueError(f"host {self.name!r}: GPU indices must be distinct, got {indices}")


def usable_cpus() -> int:
    """The CPUs this process may use (its affinity, as a container or taskset limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def local_inventory(*, cpus: float | None = None) -> HostInventory:
    """This machine: the CPUs this process may run on (psutil) and its GPUs (NVML).

    Without NVML or without a GPU the inventory is CPU-only and one line is logged; a
    CUDA_VISIBLE_DEVICES set by the user restricts the GPUs (see asynctune.core.gpu).

    Args:
        cpus: Override the CPU count (e.g. to leave cores to the desktop).
    """
    if cpus is None:
        cpus = float(usable_cpus())
    reader = NvmlReader()
    gpus = reader.read()
    return HostInventory(name="localhost", cpus=float(cpus), gpus=gpus,
                         memory_mb=psutil.virtual_memory().total / 2**20,
                         read_gpus=reader.read if gpus else None)


_placement_ids = itertools.count(1)


@dataclass
class Placement:
    """Where a trial runs: a host, CPU slots, and (GPU index, fraction) pairs.

    Args:
        host: The host's name.
        cpu: CPU slots held.
        gpus: (NVML index, fraction of that GPU) for each GPU held.
        gpu_uuids: The UUIDs of those GPUs, in the same order ("" when unknown).
        gpu_memory_mb: GPU memory reserved on each of them, if the request named it.
    """

    host: str
    cpu: float
    gpus: list[tuple[int, float]] = field(default_factory=list)
    gpu_uuids: list[str] = field(default_factory=list)
    gpu_memory_mb: float | None = None
    placement_id: int = field(default_factory=lambda: next(_placement_ids), compare=False)

    @property
    def gpu_ids(self) -> list[int]:
        return [index for index, _ in self.gpus]

    def env(self) -> dict[str, str]:
        """Environment variables for the worker process, to set over the inherited ones.

        CUDA_VISIBLE_DEVICES lists exactly the placed GPUs ("" for a CPU trial, so it cannot
        touch GPUs other trials hold), by NVML index with CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA
        numbers them as NVML does.
        """
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in self.gpu_ids), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what `asynctune.get_trial_resources()` returns inside the trial."""
        uuids = self.gpu_uuids or [""] * len(self.gpus)
        return {"host": self.host, "cpu": self.cpu,
                "gpu": float(round(sum(fraction for _, fraction in self.gpus), 9)),
                "gpus": [{"index": index, "uuid": uuid, "fraction": fraction}
                         for (index, fraction), uuid in zip(self.gpus, uuids)],
                "gpu_memory_mb": self.gpu_memory_mb,
                "cuda_visible_devices": ",".join(str(i) for i in self.gpu_ids)}


GpuRefresh = Callable[[HostInventory], Iterable[GPU]]


def _read_host_gpus(host: HostInventory) -> list[GPU]:
    return host.read_gpus() if host.read_gpus is not None else host.gpus


class ResourcePool:
    """Bookkeeping of free CPU slots, GPU fractions and GPU memory; never over-commits.

    A request fits a GPU when the GPU's unheld fraction covers it and, with gpu_memory_mb,
    when its memory covers it: the smaller of (total - what our trials there reserved) and
    (live free memory - what our trials reserved in the last `settle_s` seconds, which the
    reading may not show yet). Among the GPUs that fit, the policy chooses; ties go to the
    GPU with lower live utilization (in steps of 10 points: 0-9, 10-19, ..., so noise does not
    decide), then
    more free memory, then the lower index.

    Example:
        >>> pool = ResourcePool([HostInventory("ws", cpus=8, gpus=[GPU(0), GPU(1)])])
        >>> pool.acquire(Resources(gpu=0.5)).gpus, pool.acquire(Resources(gpu=0.5)).gpus
        ([(0, 0.5)], [(0, 0.5)])

    Args:
        hosts: The inventories of the hosts trials may run on, in order of preference.
        policy: "pack" (default) fills a partly used GPU (and host) before opening another,
            leaving whole GPUs free for bigger trials; "spread" puts each trial on the GPU
            (and host) that our trials use least, for speed when trials contend.
        refresh: Live reading of a host's GPUs, called at acquire time at most every
            `refresh_interval_s` per host; its free memory and utilization replace the
            inventory's. Default: the host's own `read_gpus` (NVML for local_inventory()).
        refresh_interval_s: Least time between two readings of one host.
        settle_s: How long a new trial's reserved GPU memory is assumed not yet visible in
            the live reading (it has not allocated it yet).
        clock: Monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(self, hosts: list[HostInventory], *, policy: str = "pack",
                 refresh: GpuRefresh | None = _read_host_gpus, refresh_interval_s: float = 2.0,
                 settle_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if policy not in ("pack", "spread"):
            raise ValueError(f"placement policy must be 'pack' or 'spread', got {policy=}")
        if not hosts:
            raise ValueError(f"ResourcePool needs at least one host, got {hosts=}")
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"ResourcePool: host names must be distinct, got {names}")
        if not refresh_interval_s >= 0:
            raise ValueError(f"refresh_interval_s must be >= 0, got {refresh_interval_s=}")
        if not settle_s >= 0:
            raise ValueError(f"settle_s must be >= 0, got {settle_s=}")
        self.hosts = {h.name: h for h in hosts}
        self.policy = policy
        self._refresh = refresh
        self._refresh_interval_s = refresh_interval_s
        self._settle_s = settle_s
        self._clock = clock
        self._last_refresh: dict[str, float] = {}
        self._refresh_failed: set[str] = set()
        self._cpu_used = {h.name: 0.0 for h in hosts}
        self._gpu_used = {(h.name, g.index): 0.0 for h in hosts for g in h.gpus}
        # Live placements: id -> (placement, time acquired); the source of every reservation.
        self._active: dict[int, tuple[Placement, float]] = {}

    def add_host(self, host: HostInventory) -> bool:
        """A host that joined late (an SSH host that connected after the start); False if known."""
        if host.name in self.hosts:
            return False
        self.hosts[host.name] = host
        self._cpu_used[host.name] = 0.0
        self._gpu_used.update({(host.name, g.index): 0.0 for g in host.gpus})
        return True

    def check(self, resources: Resources) -> None:
        """Raise ValueError when no host could ever hold this request, even when idle."""
        if any(self._could_ever_fit(host, resources) for host in self.hosts.values()):
            return
        have = "; ".join(
            f"{h.name}: {h.cpus:g} CPUs, {len(h.gpus)} GPUs"
            + (f" ({', '.join(f'{g.memory_total_mb:.0f} MB' for g in h.gpus)})" if h.gpus else "")
            for h in self.hosts.values())
        hint = ""
        if resources.gpu > 0 and not any(h.gpus for h in self.hosts.values()):
            here = f": {why_no_gpu()}" if set(self.hosts) == {"localhost"} else " on any host"
            hint = f" (no GPU was found{here}; or leave \"gpu\" out of resources_per_trial to run on CPUs)"
        raise ValueError(f"resources_per_trial {resources.as_dict()} can never fit on any host "
                         f"[{have}]{hint}")

    def acquire(self, resources: Resources, *, usable: Callable[[str], bool] | None = None) -> Placement | None:
        """A placement for the request, or None if it does not fit now (try after a release).

        `usable(host_name)` leaves out hosts that cannot take a trial right now (e.g. an SSH
        host that is down), without forgetting what they hold."""
        now = self._clock()
        candidates = []
        for host in self.hosts.values():
            if usable is not None and not usable(host.name):
                continue
            if self._cpu_used[host.name] + resources.cpu > host.cpus + _EPS:
                continue
            if resources.gpu > 0:
                self._maybe_refresh(host, now)
            gpus = self._pick_gpus(host, resources, now)
            if gpus is not None:
                candidates.append((host, gpus))
                if self.policy == "pack":  # the first host that fits, in the given order
                    break
        if not candidates:
            return None
        host, gpus = min(candidates, key=lambda c: self._host_load(c[0]))
        self._cpu_used[host.name] += resources.cpu
        for gpu in gpus:
            self._gpu_used[(host.name, gpu.index)] += min(resources.gpu, 1.0)
        placement = Placement(host.name, resources.cpu, [(g.index, min(resources.gpu, 1.0)) for g in gpus],
                              [g.uuid for g in gpus], resources.gpu_memory_mb)
        self._active[placement.placement_id] = (placement, now)
        return placement

    def release(self, placement: Placement) -> None:
        """Give back what `placement` holds; releasing one twice is a ValueError."""
        if self._active.pop(placement.placement_id, None) is None:
            raise ValueError(f"release: {placement!r} is not held (released twice, or not from this pool)")
        self._cpu_used[placement.host] = _clean(self._cpu_used[placement.host] - placement.cpu)
        for index, fraction in placement.gpus:
            key = (placement.host, index)
            self._gpu_used[key] = _clean(self._gpu_used[key] - fraction)

    def max_running(self, spec: ResourcesSpec, limit: int | None) -> int:
        """How many trials may run at once: as many as fit (a fixed request) and at most `limit`.

        Raises ValueError when a fixed request fits no host."""
        if callable(spec):
            return limit or 10**6
        resources = Resources.parse(spec)
        self.check(resources)
        capacity = self.capacity(resources)
        return max(1, min(capacity, limit) if limit else capacity)

    def capacity(self, resources: Resources) -> int:
        """How many trials of this size fit at once on the idle pool (bounds max concurrency)."""
        total = 0
        for host in self.hosts.values():
            by_cpu = int((host.cpus + _EPS) // resources.cpu) if resources.cpu > 0 else UNBOUNDED
            by_gpu = UNBOUNDED
            if resources.gpu > 0:
                per_gpu = [self._fits_per_gpu(g, resources) for g in host.gpus]
                if resources.gpu <= 1:
                    by_gpu = sum(per_gpu)
                else:
                    by_gpu = sum(1 for n in per_gpu if n > 0) // resources.gpu_count
            total = min(UNBOUNDED, total + min(by_cpu, by_gpu))
        return total

    @property
    def active(self) -> list[Placement]:
        """The placements held now."""
        return [placement for placement, _ in self._active.values()]

    def usage(self) -> dict[str, Any]:
        """Held CPU slots and GPU fractions per host, for progress output and debugging."""
        return {name: {"cpu": self._cpu_used[name], "cpus": host.cpus,
                       "gpus": {g.index: self._gpu_used[(name, g.index)] for g in host.gpus}}
                for name, host in self.hosts.items()}

    # -- the steps of a placement -------------------------------------------------------------

    def _could_ever_fit(self, host: HostInventory, resources: Resources) -> bool:
        if resources.cpu > host.cpus + _EPS:
            return False
        if resources.gpu == 0:
            return True
        return sum(1 for g in host.gpus if self._fits_per_gpu(g, resources) > 0) >= resources.gpu_count

    @staticmethod
    def _fits_per_gpu(gpu: GPU, resources: Resources) -> int:
        """Trials of this size one idle GPU holds: by fraction and, if named, by total memory."""
        by_fraction = int((1 + _EPS) // resources.gpu) if resources.gpu < 1 else 1
        if resources.gpu_memory_mb is None or gpu.memory_total_mb <= 0:  # memory unknown: fractions only
            return by_fraction
        return min(by_fraction, int((gpu.memory_total_mb + _EPS) // resources.gpu_memory_mb))

    def _maybe_refresh(self, host: HostInventory, now: float) -> None:
        if self._refresh is None or not host.gpus:
            return
        last = self._last_refresh.get(host.name)
        if last is not None and now - last < self._refresh_interval_s:
            return
        self._last_refresh[host.name] = now
        try:
            readings = {g.index: g for g in self._refresh(host)}
        except Exception as exc:  # a failed reading must not stop the experiment: keep the last one
            if host.name not in self._refresh_failed:
                logger.warning("could not read the GPUs of %s, placing on the last reading: %s", host.name, exc)
                self._refresh_failed.add(host.name)
            return
        for gpu in host.gpus:
            reading = readings.get(gpu.index)
            if reading is not None:
                gpu.memory_free_mb = reading.memory_free_mb
                gpu.utilization = reading.utilization
                if reading.memory_total_mb > 0:
                    gpu.memory_total_mb = reading.memory_total_mb

    def _free_memory_mb(self, host: HostInventory, gpu: GPU, now: float) -> float:
        """GPU memory a new trial can count on (see the class docstring); inf when unknown."""
        if gpu.memory_total_mb <= 0:
            return math.inf
        reserved = unsettled = 0.0
        for placement, since in self._active.values():
            if placement.host == host.name and placement.gpu_memory_mb and gpu.index in placement.gpu_ids:
                reserved += placement.gpu_memory_mb
                if now - since < self._settle_s:
                    unsettled += placement.gpu_memory_mb
        return min(gpu.memory_total_mb - reserved, gpu.memory_free_mb - unsettled)

    def _pick_gpus(self, host: HostInventory, resources: Resources, now: float) -> list[GPU] | None:
        """The GPUs this request gets on `host` under the policy, or None if too few fit now."""
        if resources.gpu == 0:
            return []
        share = min(resources.gpu, 1.0)
        free_memory = {g.index: self._free_memory_mb(host, g, now) for g in host.gpus}

        def unheld(g: GPU) -> float:
            return 1.0 - self._gpu_used[(host.name, g.index)]

        fitting = [g for g in host.gpus if unheld(g) + _EPS >= share and (
            resources.gpu_memory_mb is None or free_memory[g.index] + _EPS >= resources.gpu_memory_mb)]
        if len(fitting) < resources.gpu_count:
            return None

        def live_order(g: GPU) -> tuple[float, float, int]:
            return (g.utilization // 10, -free_memory[g.index], g.index)

        if self.policy == "pack":  # the most held GPU that still fits: share before opening another
            fitting.sort(key=lambda g: (round(unheld(g), 6), *live_order(g)))
        else:  # the least held GPU
            fitting.sort(key=lambda g: (-round(unheld(g), 6), *live_order(g)))
        return fitting[:resources.gpu_count]

    def _host_load(self, host: HostInventory) -> float:
        """Share of a host's CPUs our trials hold; spread picks the lowest."""
        return self._cpu_used[host.name] / host.cpus if host.cpus > 0 else 0.0


def _clean(value: float) -> float:
    """Bookkeeping after a release: float sums of fractions drift, and never go below 0."""
    return 0.0 if value < _EPS else value
