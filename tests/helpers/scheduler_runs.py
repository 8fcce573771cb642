"""Small simulated experiments for the scheduler tests of issue 30: a toy table of learning
curves replayed on asynctune's SimulatedExecutor (virtual time: fast and deterministic)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

import asynctune as at
from asynctune.executors.simulated import SimulatedExecutor, Workload, replay

HANG_S = 60  # real seconds: a simulated run that takes longer has hung (virtual time never runs out)


def toy_workload(n_configs: int = 16, epochs: int = 27, epoch_s: float = 1.0) -> Workload:
    """Config x in 0..n-1: loss = x + 10 / epoch, so lower x is better at every epoch."""
    xs = np.arange(n_configs, dtype=float)[:, None]
    t = np.arange(1, epochs + 1, dtype=float)[None, :]
    loss = xs + 10.0 / t
    return Workload("toy", [{"x": i} for i in range(n_configs)], {"loss": loss},
                    np.full(loss.shape, epoch_s), metric="loss", mode="min",
                    space={"x": {"type": "int", "low": 0, "high": n_configs - 1}})


async def simulate(storage: str, *, workers: int = 4, workload: Workload | None = None,
                   recording: str = "batched", **kwargs: Any) -> at.ExperimentAnalysis:
    """run_async on a SimulatedExecutor; fails (TimeoutError) instead of hanging."""
    kwargs.setdefault("metric", "loss")
    kwargs.setdefault("mode", "min")
    kwargs.setdefault("config", {"x": at.randint(0, 16)})
    executor = SimulatedExecutor(workload or toy_workload(), n_workers=workers, recording=recording)
    run = at.run_async(replay, executor=executor, storage_path=storage, verbose=0, **kwargs)
    return await asyncio.wait_for(run, HANG_S)


def own_results(analysis: at.ExperimentAnalysis, trial_id: str) -> list[dict[str, Any]]:
    return list(analysis.trial_results(trial_id))
