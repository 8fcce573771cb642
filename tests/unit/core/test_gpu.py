"""GPU inventory: CUDA_VISIBLE_DEVICES as CUDA reads it (data), NVML absent (real), NVML present (real).

The tests that need an NVIDIA GPU skip with the reason here; scripts/gpu_check.sh runs this
file on a GPU machine.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

import asynctune
from asynctune.core import gpu as gpu_module
from asynctune.core.gpu import NvmlReader, _restrict_to_visible, probe_gpus
from asynctune.controller.resource_monitor import MONITOR_FILE
from asynctune.core.resources import GPU, HostInventory, ResourcePool, Resources, local_inventory

UUIDS = ["GPU-0a1b2c3d-0000-1111-2222-333344445555", "GPU-0a1b9999-0000-1111-2222-333344445555",
         "GPU-ffeeddcc-0000-1111-2222-333344445555"]
FOUR = [GPU(index=i, uuid=uuid, name="A100") for i, uuid in enumerate([*UUIDS, "GPU-12345678-aaaa"])]


def _nvml_reason() -> str | None:
    """Why the real-NVML tests cannot run here, or None when they can."""
    reader = NvmlReader(visible=None)
    try:
        if not reader.available:
            return reader.unavailable_reason
        if not reader.read():
            return "NVML found no GPU"
        return None
    finally:
        reader.close()


NVML_REASON = _nvml_reason()
needs_gpu = pytest.mark.skipif(NVML_REASON is not None, reason=f"needs an NVIDIA GPU: {NVML_REASON}")


@pytest.fixture(autouse=True)
def _fresh_log_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_module, "_logged", set())


# -- CUDA_VISIBLE_DEVICES, given as data -------------------------------------------------------

@pytest.mark.parametrize("visible, expected", [
    (None, [0, 1, 2, 3]),
    ("2", [2]),
    ("3,1", [3, 1]),
    (" 1 , 2 ", [1, 2]),
    ("1,1,2", [1, 2]),
    (UUIDS[2], [2]),
    ("GPU-0a1b9", [1]),
    ("ffeedd,0", [2, 0]),
    ("", []),
    ("-1", []),
    ("1,7,2", [1]),
    ("GPU-0a1b,2", []),
], ids=["unset", "one", "reordered", "spaces", "repeated", "uuid", "uuid-prefix", "bare-uuid-prefix", "empty",
        "minus-one", "stops-at-unknown", "ambiguous-prefix"])
def test_visible_devices_restrict_the_inventory_as_cuda_reads_them(visible: str | None, expected: list[int]) -> None:
    assert [g.index for g in _restrict_to_visible(FOUR, visible)] == expected


def test_an_unknown_visible_device_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asynctune.core.gpu"):
        _restrict_to_visible(FOUR, "1,7")
        _restrict_to_visible(FOUR, "1,7")
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA_VISIBLE_DEVICES='1,7': '7' names no GPU, so CUDA sees only [1]"]


def test_indices_on_mixed_gpus_without_pci_order_are_warned_about(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    mixed = [GPU(0, uuid=UUIDS[0], name="RTX 4090"), GPU(1, uuid=UUIDS[1], name="RTX 3060")]
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    with caplog.at_level(logging.WARNING, logger="asynctune.core.gpu"):
        _restrict_to_visible(mixed, "1")
    assert "set CUDA_DEVICE_ORDER=PCI_BUS_ID" in caplog.text
    caplog.clear()
    monkeypatch.setattr(gpu_module, "_logged", set())
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    with caplog.at_level(logging.WARNING, logger="asynctune.core.gpu"):
        _restrict_to_visible(mixed, "1")
    assert caplog.text == ""


def test_user_restricted_inventory_places_only_on_the_allowed_gpus() -> None:
    host = HostInventory("ws", cpus=8, gpus=_restrict_to_visible(FOUR, "2,3"))
    pool = ResourcePool([host], refresh=None)
    placements = [pool.acquire(Resources(gpu=1)) for _ in range(3)]
    assert [p.gpu_ids for p in placements[:2]] == [[2], [3]]
    assert placements[2] is None
    # The worker's CUDA_VISIBLE_DEVICES names the NVML index, read in PCI bus order.
    assert placements[0].env()["CUDA_VISIBLE_DEVICES"] == "2"
    with pytest.raises(ValueError, match="can never fit"):
        pool.check(Resources(gpu=3))


# -- without NVML: the real code path, by making the import fail ---------------------------------

def test_without_nvidia_ml_py_the_inventory_is_cpu_only_with_one_log_line(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    with caplog.at_level(logging.INFO, logger="asynctune.core.gpu"):
        host = local_inventory()
        assert probe_gpus() == []
    assert host.gpus == [] and host.read_gpus is None and host.cpus >= 1
    assert [r.getMessage() for r in caplog.records] == [
        "no GPUs: nvidia-ml-py is not installed (pip install asynctune[gpu]); trials run on CPUs only"]
    with pytest.raises(ValueError, match="no GPU was found"):
        ResourcePool([host]).check(Resources(gpu=1))


@pytest.mark.skipif(NVML_REASON is None, reason="NVML works here; this checks a machine without it")
def test_without_an_nvidia_driver_the_reader_says_why() -> None:
    reader = NvmlReader()
    assert reader.read() == [] and not reader.available
    assert NVML_REASON == reader.unavailable_reason


# -- with NVML: the real probe -----------------------------------------------------------------

@needs_gpu
def test_real_nvml_probe_reads_every_gpu() -> None:
    with NvmlReader(visible=None) as reader:
        gpus = reader.read()
        again = reader.read()  # NVML stays initialised between readings
    assert [g.index for g in gpus] == list(range(len(gpus))) == [g.index for g in again]
    for g in gpus:
        assert g.uuid.startswith(("GPU-", "MIG-")) and g.name
        assert g.memory_total_mb > 0 and 0 <= g.memory_free_mb <= g.memory_total_mb
        assert 0 <= g.utilization <= 100
    assert len({g.uuid for g in gpus}) == len(gpus)


@needs_gpu
def test_real_nvml_probe_honours_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = NvmlReader(visible=None).read()
    last = everything[-1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", str(last.index))
    assert [g.uuid for g in probe_gpus()] == [last.uuid]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", last.uuid)
    assert [g.index for g in probe_gpus()] == [last.index]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probe_gpus() == []


@needs_gpu
def test_real_local_inventory_refreshes_from_nvml_at_acquire_time() -> None:
    host = local_inventory()
    assert host.gpus and host.read_gpus is not None
    host.gpus[0].memory_free_mb = 0.0  # a stale reading; the live one replaces it
    pool = ResourcePool([host], refresh_interval_s=0)
    placement = pool.acquire(Resources(cpu=0, gpu=0.5, gpu_memory_mb=1))
    assert placement is not None and host.gpus[0].memory_free_mb > 0


# -- with a GPU and torch: trials through asynctune.run ---------------------------------------

@needs_gpu
def test_half_gpu_trials_see_exactly_the_gpu_they_were_placed_on(storage: str) -> None:
    pytest.importorskip("torch", reason="needs torch to look at the GPU from inside a trial")
    visible = NvmlReader().read()  # what local_inventory() offers, CUDA_VISIBLE_DEVICES honoured
    n_trials = 2 * len(visible)

    def train(config: dict) -> None:  # defined here: cloudpickle sends it by value
        import os
        import time

        import torch

        placement = asynctune.get_trial_resources()
        total = float((torch.ones(1024, device="cuda") * 2).sum())  # really runs on the GPU
        properties = torch.cuda.get_device_properties(0)
        time.sleep(1.5)  # trials overlap, so two share each GPU, and the monitor samples them
        asynctune.report(device_count=torch.cuda.device_count(), torch_uuid=str(getattr(properties, "uuid", "")),
                         placement=placement, visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
                         order=os.environ.get("CUDA_DEVICE_ORDER"), total=total)

    analysis = asynctune.run(train, config={"i": asynctune.grid_search(list(range(n_trials)))},
                             resources_per_trial={"cpu": 1, "gpu": 0.5}, storage_path=storage, verbose=0,
                             monitor=0.3)
    by_uuid = {g.uuid: g for g in visible}
    used = []
    for trial in analysis.trials:
        assert trial.status is asynctune.Status.TERMINATED, trial.error
        result = trial.last_result
        [placed] = result["placement"]["gpus"]
        assert placed["fraction"] == 0.5 and placed["uuid"] in by_uuid
        assert by_uuid[placed["uuid"]].index == placed["index"]
        assert result["device_count"] == 1
        assert result["visible"] == str(placed["index"]) and result["order"] == "PCI_BUS_ID"
        if result["torch_uuid"]:  # torch >= 2.0 exposes it, without NVML's "GPU-" prefix
            assert result["torch_uuid"].removeprefix("GPU-").lower() == placed["uuid"].removeprefix("GPU-").lower()
        assert result["total"] == 2048.0
        used.append(placed["index"])
        samples = [json.loads(line) for line in open(os.path.join(trial.path, MONITOR_FILE))]
        assert samples and all([g["index"] for g in s["gpus"]] == [placed["index"]] for s in samples)
        assert max(g["memory_used_mb"] for s in samples for g in s["gpus"]) > 0
    if len(os.sched_getaffinity(0)) >= n_trials:  # all ran at once: pack put exactly two on each GPU
        assert sorted(used) == sorted(2 * [g.index for g in visible])
