"""The experiments the dashboard's tests look at, made by real runs."""

from __future__ import annotations

import asynctune as at

SPACE = {"x": at.uniform(0, 6), "width": at.choice([1, 2, 4]), "steps": 9, "net": {"depth": at.randint(1, 4)}}


def descend(config):
    for step in range(1, config["steps"] + 1):
        at.report(loss=(config["x"] - 3) ** 2 / step + 0.1 * config["width"], epoch=step)


def two_experiments(storage: str) -> str:
    """Two finished experiments under `storage`: ASHA (which stops trials, so decisions.jsonl has
    entries) and FIFO; returns `storage`."""
    at.run(descend, config=SPACE, num_samples=8, metric="loss", mode="min", seed=1, verbose=0,
           scheduler=at.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3), storage_path=storage, name="asha")
    at.run(descend, config=SPACE, num_samples=3, metric="loss", mode="min", seed=2, verbose=0,
           storage_path=storage, name="fifo")
    return storage
