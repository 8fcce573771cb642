"""A driver script whose trials wait while a file exists: tests hold an experiment mid-run with it."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

from tests.helpers.driver_runs import start_script, wait_for_results


def held_driver(*, results: int, hold_after: int, metric: str = "score", mode: str = "max") -> str:
    """A script run as `python script STORAGE HOLD`: the experiment "exp" of two trials (x = 0, 1),
    each reporting `results` results ({metric}: x + i) with a checkpoint, and waiting before result
    `hold_after` + 1 while the file HOLD exists. A restarted trial continues from its checkpoint."""
    return textwrap.dedent(f"""
        import os, sys, time
        import asynctune as at

        HOLD = sys.argv[2]

        def train(config):
            start = (at.get_checkpoint() or {{}}).get("i", 0)
            for i in range(start, {results}):
                while i >= {hold_after} and os.path.exists(HOLD):
                    time.sleep(0.02)
                time.sleep(0.01)
                at.report({metric}=config["x"] + i, checkpoint={{"i": i + 1}})

        at.run(train, config={{"x": at.grid_search([0, 1])}}, storage_path=sys.argv[1], name="exp",
               metric="{metric}", mode="{mode}", verbose=0)
    """)


def start_held(tmp_path: Path, text: str, storage: str) -> tuple[subprocess.Popen, Path]:
    """Start the driver script `text` (see held_driver) with its hold file in place."""
    hold = tmp_path / "hold"
    hold.touch()
    return start_script(tmp_path / "driver.py", text, storage, hold), hold


def kill_held(tmp_path: Path, text: str, storage: str, *, results: int) -> None:
    """Run the driver script `text` until it recorded `results` results, SIGKILL it, lift the hold."""
    driver, hold = start_held(tmp_path, text, storage)
    try:
        wait_for_results(os.path.join(storage, "exp"), results)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    hold.unlink()
