"""What the user sees of SSH hosts (issue 34): lost trials and their retries as WARNING lines
naming trial, host and checkpoint; `asynctune hosts check` taking the executor's host specs
(a hosts file, per-host python=, user, port) with the executor's verdicts; a refused port said
plainly. Real sshd servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

import pytest

import asynctune as at
from asynctune.cli import main as cli_main
from tests.helpers.sshd import sshd_missing
from tests.e2e.test_ssh import ASYNCTUNE_ROOT, dies_once, executor_for, lab, lab_hosts  # noqa: F401  (fixture)

ssh = pytest.importorskip("asynctune.executors.ssh.executor", reason="asyncssh is not installed")

pytestmark = [pytest.mark.ssh, pytest.mark.skipif(sshd_missing() is not None, reason=sshd_missing() or "")]


def test_a_lost_trial_and_its_retry_are_warnings_naming_trial_host_and_checkpoint(lab, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    analysis = at.run(dies_once, config={}, max_failures=1, verbose=0, storage_path=str(tmp_path / "driver"),
                      executor=executor_for(lab, lab_hosts(lab, str(tmp_path / "remote"))[:1]))
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    checkpoint = os.path.join(trial.path, "checkpoint_000001")
    assert any(trial.trial_id in m and "host0" in m and "SIGKILL" in m and "retry 1 of 1" in m and checkpoint in m
               for m in warnings), warnings


def check_rows(capsys, *argv: str) -> tuple[int, dict[str, dict]]:
    code = cli_main(["hosts", "check", "--json", "--timeout", "10", *argv])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return code, {row["host"]: row for row in rows}


def test_hosts_check_takes_the_executors_host_specs_and_agrees_with_it(lab, tmp_path, capsys):
    remote = tmp_path / "remote"
    good = f"python={sys.executable} workdir={remote} env.PYTHONPATH={ASYNCTUNE_ROOT}"
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(f"host1 {good}\n")
    code, rows = check_rows(capsys, "-F", lab.ssh_config, "--hosts-file", str(hosts_file), f"host0 {good}",
                            f"host0 python=/nonexistent/python workdir={remote} name=wrong-python")
    assert code == 1
    assert rows["host0"]["reachable"] and rows["host0"]["reason"] == ""
    assert rows["host1"]["reachable"] and rows["host1"]["reason"] == ""
    assert rows["wrong-python"]["reachable"] and "python=" in rows["wrong-python"]["reason"]
    # The executor's verdicts are the same: the two good specs start, the wrong python does not.
    specs = [dict(host="host0", python=sys.executable, workdir=str(remote), env={"PYTHONPATH": ASYNCTUNE_ROOT}),
             dict(host="host1", python=sys.executable, workdir=str(remote), env={"PYTHONPATH": ASYNCTUNE_ROOT})]

    async def start(hosts):
        executor = ssh.SSHExecutor(hosts, ssh_config=lab.ssh_config, wait_for_hosts_s=30)
        try:
            await executor.start()
            return sorted(executor.remote_info)
        finally:
            await executor.close()

    assert asyncio.run(start(specs)) == ["host0", "host1"]
    with pytest.raises(at.ExecutorError, match="python="):
        asyncio.run(start([dict(host="host0", python="/nonexistent/python", workdir=str(remote))]))


def test_a_refused_port_is_said_plainly(capsys):
    code, rows = check_rows(capsys, "127.0.0.1:1")
    assert code == 1
    reason = rows["127.0.0.1:1"]["reason"]
    assert "refused the connection on port 1" in reason and "sshd" in reason, reason
