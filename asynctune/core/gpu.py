"""GPU inventory through NVML (the pynvml module from nvidia-ml-py).

NVML numbers GPUs in PCI bus order; the worker gets CUDA_DEVICE_ORDER=PCI_BUS_ID so that
CUDA's numbering, and so CUDA_VISIBLE_DEVICES, agrees with it. Without nvidia-ml-py, without
the NVIDIA driver or without a GPU, the inventory is empty and one line says why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

_logged: set[str] = set()
_FROM_ENVIRONMENT: Any = object()  # NvmlReader's default: this process's CUDA_VISIBLE_DEVICES


def _log_once(level: int, message: str, *args: Any) -> None:
    """One line per cause per process: inventories are read often, the cause does not change."""
    key = message % args
    if key not in _logged:
        _logged.add(key)
        logger.log(level, message, *args)


@dataclass
class GPU:
    """One GPU of a host as NVML reports it.

    `index` is NVML's index, which is the PCI bus order; with CUDA_DEVICE_ORDER=PCI_BUS_ID
    (which the worker gets) CUDA numbers the devices the same way.
    """

    index: int
    uuid: str = ""
    name: str = ""
    memory_total_mb: float = 0.0
    memory_free_mb: float = 0.0
    utilization: float = 0.0  # percent of time a kernel ran over NVML's last sample period

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "uuid": self.uuid, "name": self.name,
                "memory_total_mb": round(self.memory_total_mb, 1),
                "memory_free_mb": round(self.memory_free_mb, 1), "utilization": self.utilization}


class NvmlReader:
    """Reads this machine's GPUs through NVML, keeping NVML initialised between readings.

    `read()` never raises: a missing library, driver or GPU gives [] and one log line, so a
    CPU-only machine simply has a CPU-only inventory.

    Example:
        >>> with NvmlReader() as reader:
        ...     gpus = reader.read()  # [] on a machine without NVIDIA GPUs

    Args:
        visible: The CUDA_VISIBLE_DEVICES to honour (indices or UUIDs, in CUDA's syntax);
            default: this process's environment. None means every GPU.
    """

    def __init__(self, *, visible: str | None = _FROM_ENVIRONMENT) -> None:
        self.visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is _FROM_ENVIRONMENT else visible
        self._nvml: Any = None
        self._initialised = False
        self.unavailable_reason: str | None = None

    def __enter__(self) -> NvmlReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def available(self) -> bool:
        """Whether NVML could be initialised (tries once)."""
        return self._init()

    def read(self) -> list[GPU]:
        """The GPUs this process may use, with their memory and utilization now."""
        if not self._init():
            return []
        nvml = self._nvml
        try:
            gpus = [_read_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as exc:
            _log_once(logging.WARNING, "could not read the GPUs through NVML: %s", exc)
            return []
        if not gpus:
            _log_once(logging.INFO, "no GPUs: NVML found no device")
        return _restrict_to_visible(gpus, self.visible)

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:  # shutting down a lost GPU's NVML is best effort
                pass

    def _init(self) -> bool:
        if self._initialised:
            return True
        if self.unavailable_reason is not None:
            return False
        try:
            import pynvml
        except ImportError:
            self.unavailable_reason = "nvidia-ml-py is not installed (pip install asynctune[gpu])"
        else:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                self.unavailable_reason = f"NVML is not available ({exc})"
            else:
                self._nvml, self._initialised = pynvml, True
                return True
        _log_once(logging.INFO, "no GPUs: %s; trials run on CPUs only", self.unavailable_reason)
        return False


def why_no_gpu() -> str:
    """Why this process sees no GPU, in words a user can act on (for error messages)."""
    with NvmlReader() as reader:
        gpus = reader.read()
        if reader.unavailable_reason is not None:
            reason = reader.unavailable_reason
        elif not gpus and reader.visible is not None:
            reason = f"CUDA_VISIBLE_DEVICES={reader.visible!r} names none of the GPUs NVML found"
        else:
            reason = "NVML found no GPU"
    return f'{reason}; GPUs are found through NVML: it needs an NVIDIA driver and pip install "asynctune[gpu]"'


def probe_gpus() -> list[GPU]:
    """The GPUs this process may use, read once; [] (with one log line) without NVML or GPUs.

    A CUDA_VISIBLE_DEVICES set by the user restricts the list to those devices.
    """
    with NvmlReader() as reader:
        return reader.read()


def _read_device(nvml: Any, index: int) -> GPU:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nvml.NVMLError:  # not supported on some boards (and MIG): treat as idle
        utilization = 0.0
    return GPU(index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)), name=_text(nvml.nvmlDeviceGetName(handle)),
               memory_total_mb=memory.total / 2**20, memory_free_mb=memory.free / 2**20, utilization=utilization)


def _text(value: str | bytes) -> str:
    """Older nvidia-ml-py versions return bytes."""
    return value if isinstance(value, str) else value.decode()


def _restrict_to_visible(gpus: list[GPU], visible: str | None) -> list[GPU]:
    """The GPUs CUDA_VISIBLE_DEVICES names, in its order, read the way CUDA reads it.

    Tokens are NVML indices or (prefixes of) UUIDs; as in CUDA, the list ends at the first
    token that names no device, and "" hides every GPU.
    """
    if visible is None:
        return gpus
    chosen: list[GPU] = []
    for token in (t.strip() for t in visible.split(",")):
        match = [g for g in gpus if _names(token, g)]
        if len(match) != 1:
            if token:
                _log_once(logging.WARNING, "CUDA_VISIBLE_DEVICES=%r: %r names %s, so CUDA sees only %s",
                          visible, token, "no GPU" if not match else "several GPUs",
                          [g.index for g in chosen] or "no GPU")
            break
        if match[0] not in chosen:
            chosen.append(match[0])
    _warn_if_order_ambiguous(gpus, visible)
    return chosen


def _names(token: str, gpu: GPU) -> bool:
    if token.isdigit():
        return int(token) == gpu.index
    return bool(token) and bool(gpu.uuid) and (gpu.uuid == token or gpu.uuid.startswith(token)
                                                or gpu.uuid.removeprefix("GPU-").startswith(token))


def _warn_if_order_ambiguous(gpus: list[GPU], visible: str) -> None:
    """CUDA's default order is fastest first: with mixed GPUs, indices may mean other devices."""
    if (os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and len({g.name for g in gpus}) > 1
            and any(t.strip().isdigit() for t in visible.split(","))):
        _log_once(logging.WARNING, "CUDA_VISIBLE_DEVICES=%r is read in PCI bus order (NVML's); set "
                  "CUDA_DEVICE_ORDER=PCI_BUS_ID too so that CUDA reads it the same way", visible)
