"""What `ray.init()` sets: the resources asynctune's local executor may use."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...executors.local import LocalExecutor

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {"initialized": False, "num_cpus": None, "num_gpus": None, "log_to_driver": True}


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         log_to_driver: bool = True, **ignored: Any) -> dict[str, Any]:
    """Ray's `ray.init`: keeps `num_cpus` (trials share that many CPUs), `num_gpus`, and
    `log_to_driver` (False: what trials print stays in their stdout.txt / stderr.txt only).

    Example:
        >>> import asynctune.compat.ray as ray
        >>> ray.init(num_cpus=4)

    There is no cluster to start or join: `address` and every other argument are accepted and
    ignored (a debug line names them). For remote machines use asynctune's SSHExecutor or
    DaskExecutor (docs/ssh.md, docs/dask.md) through `asynctune.run(executor=...)`.
    """
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"ray.init: {name} must be a number >= 0, got {name}={value!r}")
    if num_cpus == 0:
        raise ValueError("ray.init: num_cpus=0 leaves no CPU for any trial")
    if address not in (None, "local"):
        ignored["address"] = address
    if ignored:
        logger.debug("ray.init: ignoring %s (asynctune runs trials in local worker processes)", sorted(ignored))
    _state.update(initialized=True, num_cpus=num_cpus, num_gpus=num_gpus, log_to_driver=bool(log_to_driver))
    return {"num_cpus": num_cpus, "num_gpus": num_gpus}


def shutdown(*_: Any, **__: Any) -> None:
    """Ray's `ray.shutdown`: forget what init() set (asynctune's workers end with each run)."""
    _state.update(initialized=False, num_cpus=None, num_gpus=None, log_to_driver=True)


def log_to_driver() -> bool:
    """Whether trials' output is echoed in the driver's console (ray.init(log_to_driver=...))."""
    return bool(_state["log_to_driver"])


def is_initialized() -> bool:
    return bool(_state["initialized"])


def cluster_resources() -> dict[str, float]:
    """The CPUs and GPUs trials may use, as Ray names them."""
    cpus = _state["num_cpus"] if _state["num_cpus"] is not None else os.cpu_count() or 1
    gpus = _state["num_gpus"] if _state["num_gpus"] is not None else 0
    return {"CPU": float(cpus), "GPU": float(gpus)}


available_resources = cluster_resources


def local_executor() -> LocalExecutor | None:
    """The executor run() gets: None (asynctune's default) unless init() limited the resources."""
    if _state["num_cpus"] is None and _state["num_gpus"] is None:
        return None
    from ...executors.local import LocalExecutor  # the driver's: workers import this package too

    env = {"CUDA_VISIBLE_DEVICES": ""} if _state["num_gpus"] == 0 else None  # num_gpus=0: no GPU for trials
    return LocalExecutor(cpus=_state["num_cpus"], env=env)


def get_gpu_ids() -> list[int]:
    """Ray's `ray.get_gpu_ids()`: inside a trial, the indices of the GPUs it was given (what
    CUDA_VISIBLE_DEVICES lists); in the driver, none (Ray's driver holds no GPU either)."""
    import asynctune
    try:
        placement = asynctune.get_trial_resources()
    except asynctune.AsynctuneError:  # asked in the driver, outside any trial
        return []
    return [gpu["index"] for gpu in placement.get("gpus") or []]
