"""For tracker tests: an experiment whose driver is stopped by SIGTERM midway, to be resumed."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

from tests.helpers.driver_runs import start_script, wait_for_results

_DRIVER = textwrap.dedent("""
    import sys, time
    import asynctune as at
    {import_line}

    def train(config):
        checkpoint = at.get_checkpoint()
        for i in range(checkpoint["i"] if checkpoint else 0, 8):
            time.sleep(0.1)
            at.report(loss=config["x"] / (i + 1), checkpoint={{"i": i + 1}} if (i + 1) % 2 == 0 else None)

    if __name__ == "__main__":
        at.run(train, config={{"x": at.grid_search([1.0, 2.0, 3.0, 4.0])}}, max_concurrent_trials=2,
               metric="loss", mode="min", storage_path=sys.argv[1], name=sys.argv[2], verbose=0,
               callbacks=[{callback}])
""")


def interrupted_experiment(tmp_path: Path, name: str, import_line: str, callback: str) -> Path:
    """Run 4 trials of 8 results with `callback` in a driver, SIGTERM it after 6 results; the
    experiment directory, for `asynctune.resume` (the callback comes back from the saved run spec)."""
    driver = start_script(tmp_path / "driver.py", _DRIVER.format(import_line=import_line, callback=callback),
                          tmp_path / "results", name)
    experiment_dir = tmp_path / "results" / name
    wait_for_results(experiment_dir, 6, timeout=90)
    driver.send_signal(signal.SIGTERM)  # interrupted: the callback marks the unfinished runs so
    driver.wait(timeout=60)
    return experiment_dir
