"""Issue 29, case 9: a host whose key changes mid-run, against real sshd servers (tests/sshd.py)."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import sys
import time

import pytest

import asynctune as at
from tests.helpers.sshd import SSH_KEYGEN, sshd_missing, start_lab, start_server

ssh = pytest.importorskip("asynctune.executors.ssh.executor", reason="asyncssh is not installed")

pytestmark = pytest.mark.ssh
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ASYNCTUNE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(at.__file__)))


def counting(config):
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    while count < config["until"]:
        count += 1
        time.sleep(config["sleep"])
        at.report(count=count, host=at.get_trial_resources()["host"], checkpoint={"count": count})


@pytest.fixture
def two_hosts(tmp_path):
    if sshd_missing():
        pytest.skip(sshd_missing())
    lab = start_lab(str(tmp_path / "sshlab"), 2)
    yield lab
    lab.stop()


def _new_host_key(server) -> None:
    for path in (server.host_key, server.host_key + ".pub"):
        os.remove(path)
    import subprocess

    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", server.host_key], check=True)


def test_a_host_whose_key_changed_is_named_and_its_trials_go_elsewhere(two_hosts, tmp_path, caplog):
    lab = two_hosts
    remote_root = str(tmp_path / "remote")
    hosts = [{"host": s.alias, "python": sys.executable, "workdir": os.path.join(remote_root, s.alias),
              "env": {"PYTHONPATH": ASYNCTUNE_ROOT}, "cpus": 1} for s in lab.servers]
    executor = ssh.SSHExecutor(hosts, ssh_config=lab.ssh_config, working_dir=TESTS_DIR,
                               reconnect_backoff_s=(0.2, 0.5), keepalive_interval_s=1)

    async def swap_host0_key_after_its_first_checkpoints() -> None:
        pattern = os.path.join(remote_root, "host0", "experiments", "*", "trial_*", "checkpoint_000002")
        while not glob.glob(pattern):
            await asyncio.sleep(0.02)
        server = lab.servers[0]
        server.kill()  # its sshd, its sessions, its workers: and it comes back with another key
        _new_host_key(server)
        start_server(lab, server.alias)

    async def main():
        swapper = asyncio.ensure_future(swap_host0_key_after_its_first_checkpoints())
        try:
            return await at.run_async(counting, config={"until": 6, "sleep": 0.1, "x": at.grid_search([0, 1, 2, 3])},
                                      executor=executor, max_failures=2, time_budget_s=90,
                                      storage_path=str(tmp_path / "driver"), verbose=0)
        finally:
            swapper.cancel()

    caplog.set_level(logging.INFO)
    began = time.monotonic()
    analysis = asyncio.run(main())
    took = time.monotonic() - began
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 4, [t.error for t in analysis.trials]
    assert all(t.last_result["count"] == 6 for t in analysis.trials)
    assert took < 60, f"took {took:.0f}s: host0's trials waited for it"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "host key" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records if "host0" in r.getMessage()]
    message = warnings[0].getMessage()
    assert "host0" in message and "changed" in message, message
    assert "ssh -o BatchMode=yes -F " in message and "host0 true" in message, message
