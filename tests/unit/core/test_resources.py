"""Placement logic against inventories given as data (the one allowed fake: no GPU in CI)."""

from __future__ import annotations

import json
import logging
import os
import random

import numpy as np
import pytest

from asynctune.core.resources import (
    GPU, UNBOUNDED, HostInventory, Placement, ResourcePool, Resources, local_inventory, resolve_resources,
)

GB = 1024.0


def gpus(n: int, *, total_mb: float = 24 * GB, free_mb: float | None = None, utilization: float = 0.0) -> list[GPU]:
    return [GPU(index=i, uuid=f"GPU-{i:08x}-aaaa", name="RTX", memory_total_mb=total_mb,
                memory_free_mb=total_mb if free_mb is None else free_mb, utilization=utilization)
            for i in range(n)]


def workstation(n_gpus: int = 2, cpus: float = 16, **kw: float) -> HostInventory:
    return HostInventory("ws", cpus=cpus, gpus=gpus(n_gpus, **kw))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- Resources ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    (None, Resources(cpu=1, gpu=0)),
    ({"cpu": 2}, Resources(cpu=2, gpu=0)),
    ({"cpu": 0.5, "gpu": 0.5}, Resources(cpu=0.5, gpu=0.5)),
    ({"gpu": 2}, Resources(cpu=1, gpu=2)),
    ({"gpu": 1, "gpu_memory_mb": 8000}, Resources(gpu=1, gpu_memory_mb=8000)),
    ({"cpu": np.int64(3), "gpu": np.float32(0.25)}, Resources(cpu=3, gpu=0.25)),
    (Resources(cpu=4), Resources(cpu=4)),
], ids=["none", "cpu", "fractions", "two-gpus", "memory", "numpy-numbers", "resources"])
def test_parse_accepts(spec: object, expected: Resources) -> None:
    assert Resources.parse(spec) == expected


@pytest.mark.parametrize("spec, words", [
    ({"cpu": -1}, "cpu=-1"),
    ({"gpu": -0.5}, "gpu=-0.5"),
    ({"gpu": 1.5}, "gpu=1.5"),
    ({"gpu": 0, "gpu_memory_mb": 100}, "needs gpu > 0"),
    ({"gpu": 1, "gpu_memory_mb": 0}, "gpu_memory_mb=0"),
    ({"cpu": "two"}, "cpu='two'"),
    ({"cpu": float("nan")}, "cpu=nan"),
    ({"gpu": True}, "gpu=True"),
    ({"gpus": 1}, "unknown keys ['gpus']"),
    ([1, 0.5], "[1, 0.5]"),
    ("gpu=1", "'gpu=1'"),
], ids=["negative-cpu", "negative-gpu", "fractional-multi-gpu", "memory-without-gpu", "zero-memory",
        "string", "nan", "bool", "unknown-key", "list", "string-spec"])
def test_parse_rejects_naming_the_value(spec: object, words: str) -> None:
    with pytest.raises(ValueError) as info:
        Resources.parse(spec)
    assert words in str(info.value)


def test_resolve_resources_calls_a_callable_with_the_config() -> None:
    spec = lambda config: {"gpu": 1 if config["model"] == "big" else 0.5}  # noqa: E731
    assert resolve_resources(spec, {"model": "big"}) == Resources(gpu=1)
    assert resolve_resources(spec, {"model": "small"}) == Resources(gpu=0.5)


@pytest.mark.parametrize("spec", [None, {"cpu": 2}, Resources(cpu=2, gpu=1)], ids=["none", "dict", "resources"])
def test_resolve_resources_passes_plain_specs_to_parse(spec: object) -> None:
    assert resolve_resources(spec, {"x": 1}) == Resources.parse(spec)


def test_resolve_resources_names_the_bad_value_a_callable_returned() -> None:
    with pytest.raises(ValueError, match=r"returned \{'gpu': -1\} for config \{'x': 3\}.*gpu=-1"):
        resolve_resources(lambda config: {"gpu": -config["x"] // 3}, {"x": 3})
    with pytest.raises(ValueError, match=r"returned 7 for config"):
        resolve_resources(lambda config: 7, {})


def test_resolve_resources_names_the_config_a_callable_failed_on() -> None:
    with pytest.raises(ValueError, match=r"raised on config \{'y': 1\}: KeyError"):
        resolve_resources(lambda config: {"cpu": config["x"]}, {"y": 1})


# -- ResourcePool arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    ({"policy": "random"}, "policy='random'"),
    ({"refresh_interval_s": -1}, "refresh_interval_s=-1"),
    ({"settle_s": -1}, "settle_s=-1"),
], ids=["policy", "refresh-interval", "settle"])
def test_pool_rejects_bad_arguments(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ResourcePool([workstation()], **kwargs)


def test_pool_rejects_no_hosts_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="at least one host"):
        ResourcePool([])
    with pytest.raises(ValueError, match="distinct"):
        ResourcePool([workstation(), workstation()])


def test_inventory_rejects_duplicate_gpu_indices() -> None:
    with pytest.raises(ValueError, match=r"distinct, got \[0, 0\]"):
        HostInventory("ws", cpus=4, gpus=[GPU(0), GPU(0)])


# -- packing, spreading, fractions ---------------------------------------------------------------

def placed(pool: ResourcePool, resources: Resources, n: int) -> list[list[int] | None]:
    out = []
    for _ in range(n):
        placement = pool.acquire(resources)
        out.append(None if placement is None else placement.gpu_ids)
    return out


@pytest.mark.parametrize("policy, expected", [
    ("pack", [[0], [0], [1], [1], None]),
    ("spread", [[0], [1], [0], [1], None]),
], ids=["pack", "spread"])
def test_half_gpu_trials(policy: str, expected: list) -> None:
    pool = ResourcePool([workstation(2)], policy=policy)
    assert placed(pool, Resources(gpu=0.5), 5) == expected


@pytest.mark.parametrize("fraction, per_gpu", [(0.5, 2), (1 / 3, 3), (0.25, 4), (0.1, 10), (0.3, 3)],
                         ids=["half", "third", "quarter", "tenth", "0.3"])
def test_fractions_fill_a_gpu_exactly_and_no_further(fraction: float, per_gpu: int) -> None:
    pool = ResourcePool([workstation(1)])
    assert placed(pool, Resources(cpu=0, gpu=fraction), per_gpu + 1) == [[0]] * per_gpu + [None]


def test_pack_fills_a_shared_gpu_before_opening_another_and_keeps_whole_gpus_free() -> None:
    pool = ResourcePool([workstation(3)], policy="pack")
    assert pool.acquire(Resources(gpu=0.5)).gpu_ids == [0]
    assert pool.acquire(Resources(gpu=0.25)).gpu_ids == [0]
    assert pool.acquire(Resources(gpu=2)).gpu_ids == [1, 2]  # both whole GPUs were left for it
    assert pool.acquire(Resources(gpu=0.5)) is None  # only 0.25 of GPU 0 is left
    assert pool.acquire(Resources(gpu=0.25)).gpu_ids == [0]


def test_whole_gpu_request_does_not_take_a_partly_held_gpu() -> None:
    pool = ResourcePool([workstation(2)])
    first = pool.acquire(Resources(gpu=0.5))
    assert pool.acquire(Resources(gpu=1)).gpu_ids == [1]
    assert pool.acquire(Resources(gpu=1)) is None
    pool.release(first)
    assert pool.acquire(Resources(gpu=1)).gpu_ids == [0]


def test_multi_gpu_request_gets_distinct_whole_gpus() -> None:
    pool = ResourcePool([workstation(4)])
    placement = pool.acquire(Resources(gpu=2))
    assert placement.gpus == [(0, 1.0), (1, 1.0)]
    assert placement.gpu_uuids == ["GPU-00000000-aaaa", "GPU-00000001-aaaa"]
    assert pool.acquire(Resources(gpu=3)) is None
    assert pool.acquire(Resources(gpu=2)).gpu_ids == [2, 3]


def test_cpus_are_never_over_committed() -> None:
    pool = ResourcePool([workstation(0, cpus=4)])
    assert [p is not None for p in (pool.acquire(Resources(cpu=1.5)) for _ in range(3))] == [True, True, False]
    assert pool.acquire(Resources(cpu=1)) is not None  # 3 of 4 held
    assert pool.acquire(Resources(cpu=0.5)) is None


def test_gpu_trial_waits_for_cpus_too() -> None:
    pool = ResourcePool([workstation(2, cpus=2)])
    assert placed(pool, Resources(cpu=1, gpu=0.5), 3) == [[0], [0], None]


def test_release_gives_back_and_twice_is_an_error() -> None:
    pool = ResourcePool([workstation(1, cpus=2)])
    placement = pool.acquire(Resources(cpu=2, gpu=1))
    assert pool.acquire(Resources(cpu=1)) is None
    pool.release(placement)
    assert pool.usage()["ws"] == {"cpu": 0.0, "cpus": 2, "gpus": {0: 0.0}}
    with pytest.raises(ValueError, match="not held"):
        pool.release(placement)
    with pytest.raises(ValueError, match="not held"):
        pool.release(Placement("ws", 1.0))


def test_random_acquire_release_never_over_commits() -> None:
    rng = random.Random(0)
    host = HostInventory("ws", cpus=8, gpus=gpus(3, total_mb=16 * GB))
    pool = ResourcePool([host], policy="pack", refresh=None)
    sizes = [Resources(cpu=1, gpu=0.5, gpu_memory_mb=6 * GB), Resources(cpu=0.5, gpu=0.25),
             Resources(cpu=2, gpu=1), Resources(cpu=1, gpu=2), Resources(cpu=1, gpu=1 / 3), Resources(cpu=1)]
    held: list[Placement] = []
    placements = 0
    for _ in range(2000):
        if held and rng.random() < 0.4:
            pool.release(held.pop(rng.randrange(len(held))))
        else:
            placement = pool.acquire(rng.choice(sizes))
            if placement is not None:
                held.append(placement)
                placements += 1
        assert sum(p.cpu for p in held) <= host.cpus + 1e-9
        for gpu in host.gpus:
            on_it = [p for p in held if gpu.index in p.gpu_ids]
            assert sum(f for p in on_it for i, f in p.gpus if i == gpu.index) <= 1 + 1e-9
            assert sum(p.gpu_memory_mb or 0 for p in on_it) <= gpu.memory_total_mb
        assert all(len(set(p.gpu_ids)) == len(p.gpu_ids) for p in held)
    assert placements > 500  # the walk really exercised the pool


# -- memory needs and live readings ------------------------------------------------------------

def test_memory_need_skips_a_gpu_another_user_filled() -> None:
    host = workstation(2)
    host.gpus[0].memory_free_mb = 4 * GB  # someone else's job holds 20 GB of GPU 0
    pool = ResourcePool([host], refresh=None)
    assert pool.acquire(Resources(gpu=0.5, gpu_memory_mb=8 * GB)).gpu_ids == [1]
    assert pool.acquire(Resources(gpu=0.25, gpu_memory_mb=2 * GB)).gpu_ids == [1]  # pack: the held one


def test_memory_need_caps_how_many_trials_share_a_gpu() -> None:
    clock = FakeClock()
    pool = ResourcePool([workstation(1)], refresh=None, clock=clock)
    request = Resources(gpu=0.25, gpu_memory_mb=10 * GB)  # 4 by fraction, 2 by memory
    assert placed(pool, request, 3) == [[0], [0], None]
    clock.now += 3600  # settled: our reservations still count against the total
    assert pool.acquire(request) is None
    assert pool.capacity(request) == 2


def test_new_reservations_count_against_a_live_reading_that_cannot_show_them_yet() -> None:
    clock = FakeClock()
    host = workstation(1)
    host.gpus[0].memory_free_mb = 14 * GB  # another user holds 10 GB
    pool = ResourcePool([host], refresh=None, clock=clock, settle_s=30)
    assert pool.acquire(Resources(gpu=0.5, gpu_memory_mb=8 * GB)) is not None
    # The reading still says 14 GB free, but our trial is about to take 8 of them.
    assert pool.acquire(Resources(gpu=0.5, gpu_memory_mb=8 * GB)) is None
    assert pool.acquire(Resources(gpu=0.5, gpu_memory_mb=6 * GB)) is not None


def test_settled_trials_are_read_from_the_live_reading_not_counted_twice() -> None:
    clock = FakeClock()
    readings = gpus(1)
    pool = ResourcePool([workstation(1)], clock=clock, settle_s=30, refresh_interval_s=1,
                        refresh=lambda host: readings)
    assert pool.acquire(Resources(gpu=0.5, gpu_memory_mb=10 * GB)) is not None
    readings[0].memory_free_mb = 14 * GB  # our trial allocated its 10 GB
    clock.now += 60
    assert pool.acquire(Resources(gpu=0.5, gpu_memory_mb=12 * GB)) is not None  # 14 GB free, 24 - 10 unheld


def test_live_reading_steers_trials_away_from_a_gpu_others_use() -> None:
    clock = FakeClock()
    readings = gpus(2)
    pool = ResourcePool([workstation(2)], clock=clock, refresh=lambda host: readings, refresh_interval_s=5)
    readings[0].utilization, readings[0].memory_free_mb = 97.0, 3 * GB  # another user starts a job
    assert pool.acquire(Resources(gpu=1)).gpu_ids == [1]
    assert pool.acquire(Resources(gpu=1, gpu_memory_mb=4 * GB)) is None
    assert pool.acquire(Resources(gpu=1)).gpu_ids == [0]  # no memory need: a busy GPU is still a GPU


@pytest.mark.parametrize("policy", ["pack", "spread"])
def test_among_idle_gpus_utilization_then_free_memory_decide(policy: str) -> None:
    host = workstation(3)
    host.gpus[0].utilization = 45.0
    host.gpus[1].memory_free_mb = 20 * GB
    pool = ResourcePool([host], policy=policy, refresh=None)
    assert pool.acquire(Resources(gpu=0.5)).gpu_ids == [2]  # idle and most free memory


def test_utilization_noise_below_ten_points_does_not_decide() -> None:
    host = workstation(2)
    host.gpus[0].utilization, host.gpus[1].utilization = 3.0, 1.0
    host.gpus[1].memory_free_mb = 23 * GB
    pool = ResourcePool([host], refresh=None)
    assert pool.acquire(Resources(gpu=1)).gpu_ids == [0]  # the same 0-10 step: free memory decides


def test_refresh_is_rate_limited_and_used_at_acquire_time() -> None:
    clock = FakeClock()
    calls = []
    readings = gpus(2)

    def refresh(host: HostInventory) -> list[GPU]:
        calls.append(clock.now)
        return readings

    pool = ResourcePool([workstation(2)], clock=clock, refresh=refresh, refresh_interval_s=2)
    for _ in range(3):
        pool.acquire(Resources(cpu=0, gpu=0.1))
    clock.now += 1
    pool.acquire(Resources(cpu=0, gpu=0.1))
    assert calls == [1000.0]
    clock.now += 1.5
    readings[0].memory_free_mb = 1 * GB
    assert pool.acquire(Resources(cpu=0, gpu=0.1, gpu_memory_mb=2 * GB)).gpu_ids == [1]
    assert calls == [1000.0, 1002.5]
    assert pool.hosts["ws"].gpus[0].memory_free_mb == 1 * GB


def test_cpu_only_requests_do_not_read_gpus() -> None:
    calls = []
    pool = ResourcePool([workstation(2)], refresh=lambda host: calls.append(host) or host.gpus, refresh_interval_s=0)
    pool.acquire(Resources(cpu=1))
    assert calls == []
    pool.acquire(Resources(cpu=1, gpu=0.5))
    assert len(calls) == 1


def test_a_failing_live_reading_is_logged_once_and_the_last_reading_used(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    def refresh(host: HostInventory) -> list[GPU]:
        raise RuntimeError("GPU has fallen off the bus")

    pool = ResourcePool([workstation(1)], clock=clock, refresh=refresh, refresh_interval_s=0)
    with caplog.at_level(logging.WARNING, logger="asynctune.core.resources"):
        assert pool.acquire(Resources(gpu=0.5)) is not None
        assert pool.acquire(Resources(gpu=0.5)) is not None
    assert [r.message for r in caplog.records].count(
        "could not read the GPUs of ws, placing on the last reading: GPU has fallen off the bus") == 1


# -- impossible requests and capacity ------------------------------------------------------------

@pytest.mark.parametrize("host, request_, words", [
    (workstation(1), Resources(gpu=2), "{'cpu': 1.0, 'gpu': 2.0} can never fit on any host [ws: 16 CPUs, 1 GPUs"),
    (workstation(2, cpus=4), Resources(cpu=8), "{'cpu': 8.0, 'gpu': 0.0} can never fit"),
    (workstation(2), Resources(gpu=1, gpu_memory_mb=40 * GB), "24576 MB"),
    (workstation(0), Resources(gpu=0.5), "no GPU was found"),
], ids=["two-gpus-on-one", "cpus", "memory-beyond-total", "cpu-only-host"])
def test_check_rejects_what_can_never_fit(host: HostInventory, request_: Resources, words: str) -> None:
    pool = ResourcePool([host])
    with pytest.raises(ValueError) as info:
        pool.check(request_)
    assert words in str(info.value)


def test_check_accepts_what_fits_on_some_host_even_when_busy() -> None:
    pool = ResourcePool([workstation(0, cpus=2), workstation(2).__class__("big", cpus=8, gpus=gpus(2))])
    pool.acquire(Resources(cpu=8))
    pool.check(Resources(cpu=4, gpu=2))  # fits on the idle "big" host: waiting is right, not an error


@pytest.mark.parametrize("host, request_, expected", [
    (workstation(2), Resources(gpu=0.5), 4),
    (workstation(2, cpus=3), Resources(gpu=0.5), 3),
    (workstation(3), Resources(gpu=2), 1),
    (workstation(4), Resources(cpu=1, gpu=2), 2),
    (workstation(2), Resources(cpu=0, gpu=0.3), 6),
    (workstation(2), Resources(gpu=0.25, gpu_memory_mb=10 * GB), 4),
    (workstation(0, cpus=8), Resources(cpu=3), 2),
    (workstation(0, cpus=8), Resources(cpu=0), UNBOUNDED),
], ids=["half", "cpu-bound", "pairs-of-three", "pairs-of-four", "0.3", "memory-bound", "cpus", "nothing"])
def test_capacity(host: HostInventory, request_: Resources, expected: int) -> None:
    assert ResourcePool([host]).capacity(request_) == expected


# -- several hosts ---------------------------------------------------------------------------

def two_hosts() -> list[HostInventory]:
    return [HostInventory("a", cpus=4, gpus=gpus(1)), HostInventory("b", cpus=4, gpus=gpus(1))]


def test_pack_fills_the_first_host_before_the_next() -> None:
    pool = ResourcePool(two_hosts(), policy="pack")
    assert [pool.acquire(Resources(cpu=1, gpu=0.5)).host for _ in range(4)] == ["a", "a", "b", "b"]


def test_spread_picks_the_least_loaded_host() -> None:
    pool = ResourcePool(two_hosts(), policy="spread")
    assert [pool.acquire(Resources(cpu=1, gpu=0.5)).host for _ in range(4)] == ["a", "b", "a", "b"]


# -- what the worker and the trial get ----------------------------------------------------------

def test_env_shows_a_gpu_trial_only_its_gpus_in_nvml_order() -> None:
    placement = Placement("ws", 2.0, [(3, 1.0), (1, 1.0)])
    assert placement.env() == {"CUDA_VISIBLE_DEVICES": "3,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_env_hides_every_gpu_from_a_cpu_trial() -> None:
    assert Placement("ws", 0.5).env() == {"CUDA_VISIBLE_DEVICES": "", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_as_dict_is_json_and_names_the_placed_gpus() -> None:
    pool = ResourcePool([workstation(2)])
    pool.acquire(Resources(gpu=0.5))
    placement = pool.acquire(Resources(cpu=2, gpu=0.5, gpu_memory_mb=1000))
    assert json.loads(json.dumps(placement.as_dict())) == {
        "host": "ws", "cpu": 2.0, "gpu": 0.5,
        "gpus": [{"index": 0, "uuid": "GPU-00000000-aaaa", "fraction": 0.5}],
        "gpu_memory_mb": 1000.0, "cuda_visible_devices": "0"}
    cpu_only = Placement("ws", 1.0).as_dict()
    assert cpu_only["gpu"] == 0.0 and isinstance(cpu_only["gpu"], float) and cpu_only["gpus"] == []


# -- this machine ----------------------------------------------------------------------------

def test_local_inventory_counts_the_cpus_this_process_may_use() -> None:
    host = local_inventory()
    assert host.name == "localhost"
    assert host.cpus == len(os.sched_getaffinity(0))
    assert host.memory_mb > 0
    assert all(g.memory_total_mb > 0 for g in host.gpus)
    assert local_inventory(cpus=1.5).cpus == 1.5
