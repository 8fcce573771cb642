"""Experiments on the SimulatedExecutor: a small table of learning curves replayed on a virtual
clock, through the real controller, schedulers, searchers and files, with no worker process.
Lifecycle tests (pause, resume, stop, retries, what lands on disk) run on it deterministically,
in a fraction of a real run's time."""

from __future__ import annotations

from typing import Any

import numpy as np

import asynctune as at
from asynctune.executors.simulated.executor import SimulatedExecutor, Workload, replay


def table(n_configs: int = 4, epochs: int = 10, epoch_s: float = 3.0) -> Workload:
    """Config x in 0..n-1; loss falls with epochs, and lower x is better; epochs take epoch_s."""
    xs = np.arange(n_configs, dtype=float)[:, None]
    t = np.arange(1, epochs + 1, dtype=float)[None, :]
    loss = xs + 10.0 / t
    return Workload("toy", [{"x": i} for i in range(n_configs)], {"loss": loss, "x_seen": np.repeat(xs, epochs, 1)},
                    np.full(loss.shape, epoch_s), metric="loss", mode="min",
                    space={"x": {"type": "int", "low": 0, "high": n_configs - 1}})


def simulate(workload: Workload, storage: str, *, workers: int = 1, name: str = "sim", recording: str = "consolidated",
             **kwargs: Any) -> at.ExperimentAnalysis:
    """at.run on `workload` with `workers` virtual workers; by default one trial per recorded config.

    Example:
        >>> analysis = simulate(table(2), storage, scheduler=at.ASHAScheduler(max_t=10), recording="files")
    """
    kwargs.setdefault("config", {"x": at.grid_search(list(range(len(workload))))})
    return at.run(replay, metric="loss", mode="min",
                  executor=SimulatedExecutor(workload, n_workers=workers, recording=recording),
                  storage_path=storage, name=name, verbose=0, **kwargs)


def results(analysis: at.ExperimentAnalysis) -> list[dict[str, Any]]:
    """Every result of the experiment in the order of the virtual clock."""
    rows = [r for t in analysis.trials for r in analysis.trial_results(t.trial_id)]
    return sorted(rows, key=lambda r: (r["timestamp"], r["trial_id"], r["training_iteration"]))
