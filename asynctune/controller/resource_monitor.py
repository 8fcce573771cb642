"""Resource monitoring: each trial's CPU and memory, each GPU's memory and utilization.

A `ResourceMonitor` samples at a low rate (every 5 s by default) as one task of the
controller's TaskGroup. A trial is its worker's whole process tree (data loaders and other
children included), read with psutil; GPUs are read through NVML. A trial whose tree holds more
resident memory than `memory_limit_mb` is reported once, so the controller can stop it before
the machine starts swapping or the kernel's OOM killer picks a victim at random.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from ..errors import AsynctuneError, TrialFailed
from ..core.resources import GPU, Placement
from ..store.private_files import makedirs_private
from ..store.layout import dumps, open_append
from ..store.names import MONITOR_FILE  # noqa: F401 (for readers of the samples)

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0

_MIN_WINDOW_S = 0.05  # a process younger than this is measured over this long: no 10000 % spikes


class MemoryLimitExceeded(TrialFailed):
    """A trial's process tree held more resident memory than memory_limit_mb.

    Attributes:
        trial_id: The trial.
        used_mb: Resident memory of its process tree when sampled (MB).
        limit_mb: The limit.
    """

    def __init__(self, trial_id: str, used_mb: float, limit_mb: float) -> None:
        message = f"trial {trial_id} used {used_mb:.0f} MB > memory_limit_mb={limit_mb:g}"
        AsynctuneError.__init__(self, message)
        self.trial_id, self.error, self.traceback = trial_id, message, ""
        self.used_mb, self.limit_mb = used_mb, limit_mb


@dataclass
class MonitorSample:
    """One reading. `trials` maps a trial id to {"cpu_percent", "rss_mb", "num_processes"};
    `gpus` holds one dict per GPU with "index", "uuid", "memory_used_mb", "memory_total_mb",
    "utilization". cpu_percent is summed over the tree, so 200 means two busy cores."""

    time: float
    trials: dict[str, dict[str, float]] = field(default_factory=dict)
    gpus: list[dict[str, Any]] = field(default_factory=list)


Callback = Callable[..., "Awaitable[None] | None"]


class ResourceMonitor:
    """Samples running trials and GPUs every `interval_s` seconds; enforces a memory limit.

    Example:
        >>> monitor = ResourceMonitor(lambda: [("t0", os.getpid())], on_sample=print, interval_s=5)
        >>> async with asyncio.TaskGroup() as tg:  # doctest: +SKIP
        ...     tg.create_task(monitor.run())

    Args:
        running: Lists the running trials as (trial_id, pid of the trial's worker process).
        on_sample: Called (or awaited) with each MonitorSample.
        interval_s: Seconds between samples. Lower catches a memory blow-up sooner; each
            sample walks the process table, so keep it at a second or more.
        memory_limit_mb: Resident memory a trial's process tree may hold; None: no limit.
        on_memory_exceeded: Called (or awaited) with a MemoryLimitExceeded, once per trial
            process that passes the limit; required with memory_limit_mb.
        read_gpus: Reads the GPUs; "nvml" (default) reads this machine's through NVML (none
            without it), None samples no GPUs.
    """

    def __init__(self, running: Callable[[], Iterable[tuple[str, int]]], on_sample: Callback | None = None, *,
                 interval_s: float = DEFAULT_INTERVAL_S, memory_limit_mb: float | None = None,
                 on_memory_exceeded: Callback | None = None,
                 read_gpus: Callable[[], Iterable[GPU]] | str | None = "nvml") -> None:
        if not callable(running):
            raise ValueError(f"running must be a callable that lists (trial_id, pid), got {running=}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s=}")
        if memory_limit_mb is not None and not memory_limit_mb > 0:
            raise ValueError(f"memory_limit_mb must be > 0 or None, got {memory_limit_mb=}")
        if memory_limit_mb is not None and on_memory_exceeded is None:
            raise ValueError(f"memory_limit_mb={memory_limit_mb} needs on_memory_exceeded= to act on it")
        if isinstance(read_gpus, str) and read_gpus != "nvml":
            raise ValueError(f"read_gpus must be 'nvml', a callable or None, got {read_gpus=}")
        if read_gpus == "nvml":
            from ..core.gpu import NvmlReader

            read_gpus = NvmlReader().read
        self.running = running
        self.on_sample = on_sample
        self.interval_s = interval_s
        self.memory_limit_mb = memory_limit_mb
        self.on_memory_exceeded = on_memory_exceeded
        self.read_gpus = read_gpus
        # (pid, create_time) -> (cpu seconds, wall time) at the last sample: cpu_percent is the
        # rate between two samples, per process, so processes that come and go count correctly.
        self._cpu_seen: dict[tuple[int, float], tuple[float, float]] = {}
        self._reported: set[tuple[str, int]] = set()

    async def run(self) -> None:
        """Sample until cancelled. The reading runs in a thread: psutil walks /proc."""
        while True:
            await self.step()
            await asyncio.sleep(self.interval_s)

    async def step(self) -> MonitorSample:
        """One sample, delivered to the callbacks."""
        running = list(self.running())
        sample = await asyncio.to_thread(self.sample, running)
        if self.on_sample is not None:
            await _call(self.on_sample, sample)
        for error in self.exceeded(sample, running):
            logger.warning("%s", error)
            await _call(self.on_memory_exceeded, error)
        return sample

    def sample(self, running: Iterable[tuple[str, int]] | None = None) -> MonitorSample:
        """Read every running trial's process tree and every GPU now."""
        now = time.time()
        running = list(self.running() if running is None else running)
        sample = MonitorSample(time=now)
        seen: dict[tuple[int, float], tuple[float, float]] = {}
        processes, children = _process_table() if running else ({}, {})
        for trial_id, pid in running:
            usage = self._trial_usage(_tree(pid, processes, children), now, seen)
            if usage is not None:
                sample.trials[trial_id] = usage
        self._cpu_seen = seen  # forget processes that ended
        if self.read_gpus is not None:
            try:
                sample.gpus = [_gpu_usage(g) for g in self.read_gpus()]
            except Exception as exc:  # a failed GPU reading must not end the experiment
                logger.warning("could not read the GPUs: %s", exc)
        return sample

    def exceeded(self, sample: MonitorSample, running: Iterable[tuple[str, int]]) -> list[MemoryLimitExceeded]:
        """The trials over the memory limit in `sample` not reported before (each once)."""
        if self.memory_limit_mb is None:
            return []
        pids = dict(running)
        self._reported &= set(pids.items())  # a trial restarted in a new process is watched anew
        errors = []
        for trial_id, usage in sample.trials.items():
            key = (trial_id, pids.get(trial_id, -1))
            if usage["rss_mb"] > self.memory_limit_mb and key not in self._reported:
                self._reported.add(key)
                errors.append(MemoryLimitExceeded(trial_id, usage["rss_mb"], self.memory_limit_mb))
        return errors

    def _trial_usage(self, processes: list[psutil.Process], now: float,
                     seen: dict[tuple[int, float], tuple[float, float]]) -> dict[str, float] | None:
        cpu_percent = rss = 0.0
        count = 0
        for process in processes:
            try:
                with process.oneshot():
                    key = (process.pid, process.create_time())
                    times = process.cpu_times()
                    cpu = times.user + times.system + times.children_user + times.children_system
                    rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            count += 1
            cpu_before, time_before = self._cpu_seen.get(key, (0.0, key[1]))
            cpu_percent += 100 * max(0.0, cpu - cpu_before) / max(now - time_before, _MIN_WINDOW_S)
            seen[key] = (cpu, now)
        if count == 0:
            return None
        return {"cpu_percent": round(cpu_percent, 1), "rss_mb": round(rss / 2**20, 1), "num_processes": count}


def monitor_interval(monitor: bool | float | None, memory_limit_mb: float | None) -> float | None:
    """The sampling interval run(monitor=, memory_limit_mb=) asks for; None: no monitor.

    `monitor=True` samples every DEFAULT_INTERVAL_S seconds, a number every that many; a
    memory limit needs the monitor, so it turns it on at the default interval.
    """
    if memory_limit_mb is not None and not (_is_number(memory_limit_mb) and memory_limit_mb > 0):
        raise ValueError(f"run: memory_limit_mb must be a positive number of MB, got {memory_limit_mb=}")
    if monitor is None or monitor is False:
        return DEFAULT_INTERVAL_S if memory_limit_mb is not None else None
    if monitor is True:
        return DEFAULT_INTERVAL_S
    if _is_number(monitor) and monitor > 0:
        return float(monitor)
    raise ValueError(f"run: monitor must be True, False or a sampling interval in seconds > 0, got {monitor=}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def trial_records(sample: MonitorSample, placements: Mapping[str, Placement | None]) -> dict[str, dict[str, Any]]:
    """Each sampled trial's line of its monitor.jsonl: its usage and the readings of its GPUs."""
    records = {}
    for trial_id, usage in sample.trials.items():
        placement = placements.get(trial_id)
        own = set(placement.gpu_ids) if placement is not None else set()
        records[trial_id] = {"time": round(sample.time, 3), **usage,
                             "gpus": [g for g in sample.gpus if g["index"] in own]}
    return records


def append_jsonl(path: str, record: dict[str, Any]) -> None:
    """Append one line; opened per line, so a sample every few seconds holds no file open."""
    makedirs_private(os.path.dirname(path) or ".")
    with open_append(path) as file:  # a torn last line is moved aside first
        file.write(dumps(record) + "\n")


def _process_table() -> tuple[dict[int, psutil.Process], dict[int, list[int]]]:
    """Every process and every process's children, read once per sample for all trials."""
    processes: dict[int, psutil.Process] = {}
    children: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid"]):
        processes[process.pid] = process
        children.setdefault(process.info["ppid"], []).append(process.pid)
    return processes, children


def _tree(pid: int, processes: dict[int, psutil.Process], children: dict[int, list[int]]) -> list[psutil.Process]:
    """The process `pid` and all its descendants (empty if it has ended)."""
    if pid not in processes:
        return []
    tree, stack, visited = [], [pid], set()
    while stack:
        current = stack.pop()
        if current in processes and current not in visited:  # pid 0 is its own parent on Linux
            visited.add(current)
            tree.append(processes[current])
            stack.extend(children.get(current, ()))
    return tree


def _gpu_usage(gpu: GPU) -> dict[str, Any]:
    return {"index": gpu.index, "uuid": gpu.uuid, "memory_used_mb": round(gpu.memory_total_mb - gpu.memory_free_mb, 1),
            "memory_total_mb": round(gpu.memory_total_mb, 1), "utilization": gpu.utilization}


async def _call(callback: Callback, *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result
