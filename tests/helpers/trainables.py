"""Trainables more than one test module runs (module-level, so workers and a resumed run in a
fresh interpreter import them by name)."""

from __future__ import annotations

import asynctune as at


def counting(config):
    """Six results of loss (x - 3)^2 + 1/step, a checkpoint with each; resumes from its checkpoint."""
    checkpoint = at.get_checkpoint()
    step = checkpoint["step"] if checkpoint else 0
    while step < 6:
        step += 1
        at.report(loss=(config["x"] - 3) ** 2 + 1 / step, checkpoint={"step": step})
