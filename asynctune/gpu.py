"""GPU inventory through NVML (the pynvml module from nvidia-ml-py)."""

from __future__ import annotations

import logging
import os

from .resources import GPU

logger = logging.getLogger(__name__)


def probe_gpus() -> list[GPU]:
    """The GPUs this process may use; [] (with one log line) when NVML or GPUs are missing.

    A CUDA_VISIBLE_DEVICES set by the user restricts the list to those devices.
    """
    try:
        import pynvml
    except ImportError:
        logger.info("no GPUs: nvidia-ml-py is not installed (pip install asynctune[gpu])")
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        logger.info("no GPUs: NVML is not available (%s)", exc)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                utilization = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                utilization = 0.0
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            gpus.append(GPU(index=index, uuid=uuid if isinstance(uuid, str) else uuid.decode(),
                            name=name if isinstance(name, str) else name.decode(),
                            memory_total_mb=memory.total / 2**20, memory_free_mb=memory.free / 2**20,
                            utilization=utilization))
    finally:
        pynvml.nvmlShutdown()
    return _restrict_to_visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))


def _restrict_to_visible(gpus: list[GPU], visible: str | None) -> list[GPU]:
    if visible is None:
        return gpus
    chosen = []
    for token in (t.strip() for t in visible.split(",") if t.strip()):
        match = [g for g in gpus if str(g.index) == token or g.uuid == token or g.uuid.startswith(token)]
        chosen.extend(m for m in match if m not in chosen)
    return chosen
