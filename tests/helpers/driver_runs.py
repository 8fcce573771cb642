"""For tests that start a driver script as its own process and kill it mid-run: the scripts, and
how far they got."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def start_script(script: Path, text: str, *args: object) -> subprocess.Popen:
    """Write `text` to `script` and start it as a driver process (output captured, stderr in stdout)."""
    script.write_text(text)
    return subprocess.Popen([sys.executable, str(script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def count_results(experiment_dir: object) -> int:
    """Results recorded so far, over every trial directory of the experiment."""
    total = 0
    for root, _, files in os.walk(str(experiment_dir)):
        if "result.jsonl" in files:
            with open(os.path.join(root, "result.jsonl")) as f:
                total += sum(1 for _ in f)
    return total


def wait_for_results(experiment_dir: object, count: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if count_results(experiment_dir) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} results after {timeout}s")


# A driver script: argv storage, name, pause (seconds per result); trials checkpoint every 3rd result.
EXPERIMENT = textwrap.dedent("""
    import sys, time
    import asynctune as at

    def train(config):
        checkpoint = at.get_checkpoint()
        start = checkpoint["i"] if checkpoint else 0
        for i in range(start, 10):
            time.sleep(config["pause"])
            at.report(score=config["x"] * (i + 1) - i * i / 10, i=i + 1,
                      checkpoint={"i": i + 1} if (i + 1) % 3 == 0 else None)

    if __name__ == "__main__":
        at.run(train, config={"x": at.uniform(0, 1), "pause": float(sys.argv[3])}, num_samples=6,
               max_concurrent_trials=2, metric="score", mode="max", seed=3,
               storage_path=sys.argv[1], name=sys.argv[2], verbose=1)
""")


def start_driver(tmp_path: Path, name: str, pause: float = 0.05) -> subprocess.Popen:
    """EXPERIMENT (6 trials of 10 results, 2 at once) as a driver process, under tmp_path/results/name."""
    return start_script(tmp_path / "experiment.py", EXPERIMENT, tmp_path / "results", name, pause)


def kill_driver_after(tmp_path: Path, name: str, results: int) -> Path:
    """Start the experiment in a driver process, SIGKILL it after `results` results, and let
    its workers notice; returns the experiment directory."""
    driver = start_driver(tmp_path, name)
    experiment_dir = tmp_path / "results" / name
    wait_for_results(experiment_dir, results)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    time.sleep(0.5)
    return experiment_dir


def iterations_of(analysis) -> dict[str, list[int]]:
    """trial_id -> the `i` of each of its results, in order."""
    return {t.trial_id: [r["i"] for r in analysis.trial_results(t.trial_id)] for t in analysis.trials}


def counting_experiment(storage: str, marker: str) -> None:
    """A run whose scheduler counts the results it sees; the trial SIGKILLs the driver (its
    parent) after its second result, once (`marker` remembers it)."""
    import asynctune as at_
    from asynctune.algorithms.schedulers.fifo import FIFOScheduler

    class Counting(FIFOScheduler):
        seen = 0

        def on_trial_result(self, trial, result):
            type(self).seen += 1
            return at_.CONTINUE

    def steps(config):
        checkpoint = at_.get_checkpoint()
        for i in range(checkpoint["i"] if checkpoint else 0, 4):
            at_.report(i=i + 1, checkpoint={"i": i + 1})
            if i == 1 and not os.path.exists(config["marker"]):
                open(config["marker"], "w").close()
                os.kill(os.getppid(), signal.SIGKILL)
                time.sleep(5)

    at_.run(steps, config={"marker": marker}, scheduler=Counting(), storage_path=storage, name="counting", verbose=0)
