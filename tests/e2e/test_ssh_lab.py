"""A lab's first day with the SSH executor, against real sshd servers on 127.0.0.1.

Each test drives the executor as docs/ssh.md tells a user to: hosts files, `hosts check`,
resuming after the driver died, a project folder with its own modules and odd files.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import asynctune as at
from tests.e2e.test_ssh import counting  # counts, a checkpoint each step; a restored trial goes on
from tests.helpers.sshd import SSHLab, sshd_missing, start_lab

ssh = pytest.importorskip("asynctune.executors.ssh.executor", reason="asyncssh is not installed")

pytestmark = pytest.mark.ssh
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ASYNCTUNE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(at.__file__)))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if sshd_missing():
        pytest.skip(sshd_missing())
    lab = start_lab(str(tmp_path_factory.mktemp("sshlab")), 2)
    yield lab
    lab.stop()


def host_specs(lab: SSHLab, remote_root: str) -> list[dict]:
    """The lab's hosts, one CPU each, as a user's hosts would be given."""
    return [{"host": s.alias, "python": sys.executable, "workdir": os.path.join(remote_root, s.alias),
             "env": {"PYTHONPATH": ASYNCTUNE_ROOT}, "cpus": 1} for s in lab.servers]


def results(trial_dir: str) -> list[dict]:
    with open(os.path.join(trial_dir, "result.jsonl")) as f:
        return [json.loads(line) for line in f]


# Resuming ----------------------------------------------------------------------------------------

_DRIVER = """
import json, sys
import asynctune as at
from asynctune.executors.ssh import SSHExecutor
from tests.e2e.test_ssh import counting
hosts, ssh_config, working_dir, storage = json.loads(sys.argv[1])
at.run(counting, config={"until": 30, "sleep": 0.1, "x": at.grid_search([0, 1, 2])}, name="lab",
       executor=SSHExecutor(hosts, ssh_config=ssh_config, working_dir=working_dir), storage_path=storage, verbose=0)
"""


def test_an_ssh_experiment_whose_driver_was_killed_resumes_from_its_checkpoints(lab, tmp_path):
    storage = str(tmp_path / "driver")
    arguments = json.dumps([host_specs(lab, str(tmp_path / "remote")), lab.ssh_config, TESTS_DIR, storage])
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, arguments], cwd=ASYNCTUNE_ROOT,
                              env={**os.environ, "PYTHONPATH": ASYNCTUNE_ROOT})
    experiment = os.path.join(storage, "lab")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and driver.poll() is None:
            if glob.glob(os.path.join(experiment, "trial_*", "checkpoint_000003")):  # copied to the driver
                break
            time.sleep(0.1)
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.send_signal(signal.SIGKILL)  # no cleanup at all: as a lost laptop or an OOM kill
    finally:
        driver.kill()
        driver.wait()
    copied = {os.path.basename(os.path.dirname(c)) for c in glob.glob(os.path.join(experiment, "trial_*", "checkpoint_*"))}
    assert copied, "no checkpoint reached the driver before it was killed"

    # The executor saved with the experiment reconnects to the same hosts.
    analysis = at.resume(experiment, verbose=0)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 3
    for trial in analysis.trials:
        rows = results(trial.path)
        assert [r["count"] for r in rows] == list(range(1, 31))  # every iteration once, none lost
        if trial.trial_id in copied:  # it went on from its checkpoint on the driver, not from scratch
            assert rows[-1]["restored"]
