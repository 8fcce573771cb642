"""ResourceMonitor sampling real child processes (psutil, real); GPUs given as data."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from asynctune.core.compat import TaskGroup, timeout

import asynctune
from asynctune.controller.resource_monitor import MONITOR_FILE, MemoryLimitExceeded, MonitorSample, ResourceMonitor, monitor_interval
from asynctune.core.resources import GPU

# A process that holds `mb` MB (touched, so resident) and optionally spins a core.
HOLD = """
import sys, time
block = bytearray({mb} * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("ready", flush=True)
end = time.time() + 60
while time.time() < end:
    if {spin}:
        sum(range(10000))
    else:
        time.sleep(0.05)
"""
# A parent that starts a child holding memory, then holds some itself: one trial's process tree.
TREE = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {child!r}], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
exec({parent!r})
"""


def start(code: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        for child in psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []:
            child.kill()
        process.kill()
        process.wait()


def hold(processes: list, mb: int, spin: bool = False) -> subprocess.Popen:
    processes.append(start(HOLD.format(mb=mb, spin=spin)))
    return processes[-1]


def no_gpus() -> list[GPU]:
    return []


@pytest.mark.parametrize("kwargs, words", [
    ({"interval_s": 0}, "interval_s=0"),
    ({"memory_limit_mb": -5, "on_memory_exceeded": print}, "memory_limit_mb=-5"),
    ({"memory_limit_mb": 100}, "needs on_memory_exceeded="),
    ({"read_gpus": "dcgm"}, "read_gpus='dcgm'"),
], ids=["interval", "negative-limit", "limit-without-callback", "unknown-reader"])
def test_rejects_bad_arguments(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ResourceMonitor(list, **kwargs)


def test_running_must_be_callable() -> None:
    with pytest.raises(ValueError, match="running must be a callable"):
        ResourceMonitor([("t", 1)])


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_samples_memory_and_cpu_of_real_processes(processes: list) -> None:
    idle, busy = hold(processes, 150), hold(processes, 20, spin=True)
    monitor = ResourceMonitor(lambda: [("idle", idle.pid), ("busy", busy.pid)], read_gpus=no_gpus)
    monitor.sample()
    cpu_before, wall_before = cpu_seconds(busy.pid), time.time()
    time.sleep(0.6)
    sample = monitor.sample()
    # Checked against psutil read on its own over the same window: the CI machine may be so
    # loaded that the spinning process gets far less than a core.
    expected = 100 * (cpu_seconds(busy.pid) - cpu_before) / (time.time() - wall_before)
    assert set(sample.trials) == {"idle", "busy"}
    assert sample.trials["busy"]["cpu_percent"] == pytest.approx(expected, abs=10)
    assert sample.trials["idle"]["cpu_percent"] < min(10, sample.trials["busy"]["cpu_percent"])
    assert 150 <= sample.trials["idle"]["rss_mb"] < 250
    assert sample.trials["busy"]["rss_mb"] < sample.trials["idle"]["rss_mb"]
    assert sample.trials["idle"]["num_processes"] == 1


def test_first_sample_of_a_trial_is_its_average_since_start(processes: list) -> None:
    busy = hold(processes, 10, spin=True)
    time.sleep(0.5)
    started = psutil.Process(busy.pid).create_time()
    cpu_before, before = cpu_seconds(busy.pid), time.time()
    sample = ResourceMonitor(lambda: [("busy", busy.pid)], read_gpus=no_gpus).sample()
    cpu_after, after = cpu_seconds(busy.pid), time.time()
    # Its average since start at the moment of the sample lies between these bounds, however
    # much CPU other processes left it (CPU time is counted in ticks of 10 ms: 3 points spare).
    low, high = 100 * cpu_before / (after - started), 100 * cpu_after / (before - started)
    assert low - 3 <= sample.trials["busy"]["cpu_percent"] <= high + 3, (low, high)
    assert sample.trials["busy"]["cpu_percent"] > 0 and low > 0  # how much it got is the machine's load


def test_a_trial_is_its_whole_process_tree(processes: list) -> None:
    code = TREE.format(child=HOLD.format(mb=120, spin=False), parent=HOLD.format(mb=60, spin=False))
    processes.append(start(code))
    sample = ResourceMonitor(lambda: [("t", processes[0].pid)], read_gpus=no_gpus).sample()
    assert sample.trials["t"]["num_processes"] == 2
    assert 180 <= sample.trials["t"]["rss_mb"] < 320


def test_a_trial_that_ended_is_left_out(processes: list) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    alive = hold(processes, 10)
    sample = ResourceMonitor(lambda: [("ended", ended.pid), ("alive", alive.pid)], read_gpus=no_gpus).sample()
    assert list(sample.trials) == ["alive"]


def test_gpus_are_sampled_with_used_memory() -> None:
    reading = [GPU(0, uuid="GPU-a", memory_total_mb=24000, memory_free_mb=18000, utilization=71)]
    sample = ResourceMonitor(list, read_gpus=lambda: reading).sample()
    assert sample.gpus == [{"index": 0, "uuid": "GPU-a", "memory_used_mb": 6000.0,
                            "memory_total_mb": 24000.0, "utilization": 71}]


def test_a_failing_gpu_reading_is_logged_and_the_sample_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def lost() -> list[GPU]:
        raise RuntimeError("GPU is lost")

    with caplog.at_level(logging.WARNING, logger="asynctune.controller.resource_monitor"):
        sample = ResourceMonitor(list, read_gpus=lost).sample()
    assert sample.gpus == [] and "could not read the GPUs: GPU is lost" in caplog.text


async def test_memory_limit_is_reported_once_per_trial_process(processes: list) -> None:
    big, small = hold(processes, 200), hold(processes, 10)
    running = [("big", big.pid), ("small", small.pid)]
    errors: list[MemoryLimitExceeded] = []
    monitor = ResourceMonitor(lambda: running, memory_limit_mb=120, on_memory_exceeded=errors.append,
                              read_gpus=no_gpus)
    await monitor.step()
    await monitor.step()
    assert [e.trial_id for e in errors] == ["big"]
    assert errors[0].limit_mb == 120 and errors[0].used_mb >= 200
    assert str(errors[0]) == f"trial big used {errors[0].used_mb:.0f} MB > memory_limit_mb=120"
    # The trial restarted in a new process: that one is watched anew.
    again = hold(processes, 200)
    running[0] = ("big", again.pid)
    await monitor.step()
    assert [e.trial_id for e in errors] == ["big", "big"]


async def test_run_samples_at_its_interval_and_awaits_async_callbacks(processes: list) -> None:
    worker = hold(processes, 10)
    samples: list[MonitorSample] = []
    enough = asyncio.Event()

    async def on_sample(sample: MonitorSample) -> None:
        await asyncio.sleep(0)  # an async callback: its sample arrives only if run() awaits it
        samples.append(sample)
        if len(samples) == 4:
            enough.set()

    monitor = ResourceMonitor(lambda: [("t", worker.pid)], on_sample, interval_s=0.1, read_gpus=no_gpus)
    async with TaskGroup() as tg:
        task = tg.create_task(monitor.run())
        async with timeout(30):  # four samples take 0.3 s; a loaded machine is slower, never this slow
            await enough.wait()
        task.cancel()
    gaps = [later.time - earlier.time for earlier, later in zip(samples, samples[1:])]
    assert len(gaps) >= 3 and all(gap >= 0.09 for gap in gaps), gaps  # never sooner than its interval
    assert all("t" in s.trials for s in samples)


async def test_an_error_in_a_callback_reaches_the_owner(processes: list) -> None:
    def broken(sample: MonitorSample) -> None:
        raise KeyError("oops")

    monitor = ResourceMonitor(list, broken, interval_s=0.05, read_gpus=no_gpus)
    with pytest.raises(BaseException) as info:  # an ExceptionGroup (a backport's on Python 3.10)
        async with TaskGroup() as tg:
            tg.create_task(monitor.run())
    assert any(isinstance(e, KeyError) for e in getattr(info.value, "exceptions", [info.value]))


def test_default_gpu_reader_is_nvml_and_never_fails() -> None:
    sample = ResourceMonitor(list).sample()  # reads NVML when present, nothing otherwise
    assert all(g["memory_total_mb"] > 0 for g in sample.gpus)


# -- run(..., monitor=, memory_limit_mb=): the controller with real workers -----------------------

@pytest.mark.parametrize("monitor, limit, expected", [
    (False, None, None), (True, None, 5.0), (0.5, None, 0.5), (False, 100, 5.0), (2, 100, 2.0),
], ids=["off", "on", "interval", "limit-turns-it-on", "both"])
def test_monitor_interval_from_run_arguments(monitor: object, limit: float | None, expected: float | None) -> None:
    assert monitor_interval(monitor, limit) == expected


@pytest.mark.parametrize("monitor, limit, words", [
    (-1, None, "monitor=-1"), ("5s", None, "monitor='5s'"), (True, 0, "memory_limit_mb=0"),
    (True, "1GB", "memory_limit_mb='1GB'"),
], ids=["negative", "string", "zero-limit", "string-limit"])
def test_run_rejects_bad_monitor_arguments(monitor: object, limit: object, words: str, storage: str) -> None:
    with pytest.raises(ValueError, match=words):
        asynctune.run(lambda config: None, storage_path=storage, verbose=0, monitor=monitor,
                      memory_limit_mb=limit)


def test_a_trial_over_its_memory_limit_is_stopped_as_error_and_samples_are_saved(storage: str) -> None:
    def grow_or_idle(config: dict) -> None:  # defined here: cloudpickle sends it by value
        held = []
        for step in range(25):
            if config["grow"]:
                held.append(bytearray(40 * 2**20))  # 40 MB more each step, touched: resident
                for i in range(0, len(held[-1]), 4096):
                    held[-1][i] = 1
            asynctune.report(step=step, held_mb=40 * len(held))
            time.sleep(0.1)

    analysis = asynctune.run(
        grow_or_idle, config={"grow": asynctune.grid_search([True, False])}, storage_path=storage,
        name="limit", verbose=0, max_concurrent_trials=2, monitor=0.2, memory_limit_mb=400)
    by_grow = {t.config["grow"]: t for t in analysis.trials}
    grower, idler = by_grow[True], by_grow[False]
    assert grower.status is asynctune.Status.ERROR
    assert re.fullmatch(rf"trial {grower.trial_id} used \d+ MB > memory_limit_mb=400", grower.error)
    assert grower.last_result["held_mb"] < 40 * 25  # stopped before it reached the end
    assert idler.status is asynctune.Status.TERMINATED and idler.last_result["step"] == 24
    for trial in (grower, idler):
        lines = [json.loads(line) for line in open(os.path.join(trial.path, MONITOR_FILE))]
        assert len(lines) >= 3
        assert set(lines[0]) == {"time", "cpu_percent", "rss_mb", "num_processes", "gpus"}
        assert all(line["gpus"] == [] for line in lines)  # CPU-only trials see no GPU readings
    grower_lines = [json.loads(line) for line in open(os.path.join(grower.path, MONITOR_FILE))]
    assert grower_lines[-1]["rss_mb"] > 400 > grower_lines[0]["rss_mb"]
