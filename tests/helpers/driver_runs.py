"""For tests that start a driver script as its own process and kill it mid-run: how far it got."""

from __future__ import annotations

import os
import subprocess
import sys
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
