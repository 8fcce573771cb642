"""The command an SSH host runs to end the workers of a connection given up: it ends the process
each was, identified by pid and start time, and never another that has its pid now."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

workers = pytest.importorskip("asynctune.executors.ssh.workers", reason="asyncssh is not installed")


def _end_lost(*args: str) -> str:
    return subprocess.run([sys.executable, "-c", workers._END_LOST_WORKERS, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_lost_worker_is_ended_with_its_children_only_when_its_start_time_matches():
    worker = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"])
    try:
        process = psutil.Process(worker.pid)
        while not process.children():
            time.sleep(0.01)
        child = process.children()[0]
        # Same pid, another start time: a process that took a reused pid (after a reboot or a wrap).
        assert _end_lost(f"{worker.pid}:{process.create_time() - 5}") == ""
        assert worker.poll() is None
        assert _end_lost(f"{worker.pid}:{process.create_time()!r}") == str(worker.pid)
        assert worker.wait(timeout=10) == -9
        child.wait(timeout=10)  # its descendants too
    finally:
        worker.kill()
