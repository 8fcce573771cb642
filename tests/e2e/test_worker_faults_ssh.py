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


def _lab(tmp_path, hosts: int):
    if sshd_missing():
        pytest.skip(sshd_missing())
    lab = start_lab(str(tmp_path / "sshlab"), hosts)
    yield lab
    lab.stop()


@pytest.fixture
def two_hosts(tmp_path):
    yield from _lab(tmp_path, 2)


@pytest.fixture
def one_host(tmp_path):
    yield from _lab(tmp_path, 1)


def _new_host_key(server) -> None:
    for path in (server.host_key, server.host_key + ".pub"):
        os.remove(path)
    import subprocess

    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", server.host_key], check=True)


def _executor(lab, remote_root: str) -> ssh.SSHExecutor:
    """One CPU on each of the lab's hosts, reconnecting and checking liveness quickly."""
    hosts = [{"host": s.alias, "python": sys.executable, "workdir": os.path.join(remote_root, s.alias),
              "env": {"PYTHONPATH": ASYNCTUNE_ROOT}, "cpus": 1} for s in lab.servers]
    return ssh.SSHExecutor(hosts, ssh_config=lab.ssh_config, working_dir=TESTS_DIR,
                           reconnect_backoff_s=(0.2, 0.5), keepalive_interval_s=1)


def test_a_host_whose_key_changed_is_named_and_its_trials_go_elsewhere(two_hosts, tmp_path, caplog):
    lab = two_hosts
    remote_root = str(tmp_path / "remote")
    executor = _executor(lab, remote_root)

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


def test_a_host_whose_disk_turns_read_only_is_taken_out_and_its_trials_finish_elsewhere(two_hosts, tmp_path, caplog):
    # Before, the trial retried on that host failed at once (its directory could not be made) and so
    # did every trial placed there after it: a host with a broken disk turned trials into ERRORs.
    from tests.helpers.disks import mount, umount

    lab = two_hosts
    remote_root = str(tmp_path / "remote")
    executor = _executor(lab, remote_root)
    host0 = os.path.join(remote_root, "host0")
    mounted: list[str] = []

    async def make_host0_read_only_after_its_first_checkpoints() -> None:
        pattern = os.path.join(host0, "experiments", "*", "trial_*", "checkpoint_000002")
        while not glob.glob(pattern):
            await asyncio.sleep(0.02)
        mount(host0, ["--bind", host0])  # skips the test where it cannot mount (needs root)
        mounted.append(host0)
        mount(host0, ["-o", "remount,bind,ro", host0])

    async def main():
        attack = asyncio.ensure_future(make_host0_read_only_after_its_first_checkpoints())
        try:
            return await at.run_async(counting, config={"until": 6, "sleep": 0.1, "x": at.grid_search([0, 1, 2, 3])},
                                      executor=executor, max_failures=2, time_budget_s=90,
                                      storage_path=str(tmp_path / "driver"), verbose=0,
                                      raise_on_failed_trial="never")
        finally:
            attack.cancel()
            for path in mounted:
                umount(path)

    caplog.set_level(logging.INFO)
    analysis = asyncio.run(main())
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 4, [t.error for t in analysis.trials]
    assert all(t.last_result["count"] == 6 for t in analysis.trials)
    assert sum(t.num_failures for t in analysis.trials) <= 2  # the trial it ran, and that trial's retry there
    down = [r.getMessage() for r in caplog.records if "host0 is down" in r.getMessage()]
    assert down and f"its workdir {host0} cannot be written" in down[0] and "Read-only file system" in down[0], down
    assert not any("host0 is back" in r.getMessage() for r in caplog.records)  # its probe writes: still read-only


def test_a_host_whose_workdir_cannot_be_written_is_refused_at_start_naming_it(two_hosts, tmp_path):
    from tests.helpers.disks import mount, umount

    lab = two_hosts
    workdir = str(tmp_path / "remote" / "host0")
    os.makedirs(workdir)
    mount(workdir, ["--bind", workdir])  # skips the test where it cannot mount (needs root)
    try:
        mount(workdir, ["-o", "remount,bind,ro", workdir])
        executor = ssh.SSHExecutor([{"host": "host0", "python": sys.executable, "workdir": workdir,
                                     "env": {"PYTHONPATH": ASYNCTUNE_ROOT}}], ssh_config=lab.ssh_config)

        async def main():
            async with executor:
                pass

        with pytest.raises(at.ExecutorError, match=rf"host host0: its workdir {workdir} cannot be written "
                                                   r"\(OSError: \[Errno 30\] Read-only file system"):
            asyncio.run(main())
    finally:
        umount(workdir)


def test_a_host_key_changed_between_runs_is_refused_with_commands_that_reach_that_host(two_hosts, tmp_path):
    # Before, the advice was `ssh -p 22 host0` and `ssh-keyscan -p 22 host0`: port 22, not the alias's port
    # from the ssh config, and ssh-keyscan does not read the ssh config at all.
    import re
    import subprocess

    lab = two_hosts
    server = lab.servers[0]
    server.kill()
    _new_host_key(server)
    start_server(lab, server.alias)
    executor = _executor(lab, str(tmp_path / "remote"))
    with pytest.raises(at.HostUnreachable, match="host host0 unreachable: its host key is not trusted") as refused:
        asyncio.run(executor.start())
    message = str(refused.value)
    assert "-p 22" not in message and "ssh-keyscan" not in message, message
    login = f"`ssh -F {lab.ssh_config} host0`"
    inspect = f"`ssh -o BatchMode=yes -F {lab.ssh_config} host0 true`"
    assert f"log in once with {login}" in message and inspect in message, message
    shown = subprocess.run(inspect.strip("`").split(), capture_output=True, text=True, timeout=30)
    assert re.search(rf"Offending \S+ key in {re.escape(lab.known_hosts)}:1", shown.stderr), shown.stderr


def test_an_unreachable_host_at_start_names_how_to_start_with_the_others(two_hosts, tmp_path):
    import socket

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    hosts = [{"host": "host0", "python": sys.executable, "workdir": str(tmp_path / "remote"),
              "env": {"PYTHONPATH": ASYNCTUNE_ROOT}},
             {"host": f"127.0.0.1:{closed_port}", "python": sys.executable, "workdir": str(tmp_path / "remote")}]
    executor = ssh.SSHExecutor(hosts, ssh_config=two_hosts.ssh_config, working_dir=TESTS_DIR)
    with pytest.raises(at.HostUnreachable) as refused:
        asyncio.run(executor.start())
    assert refused.value.host == f"127.0.0.1:{closed_port}"
    assert str(refused.value).endswith(
        "The other hosts (host0) connected: SSHExecutor(..., skip_unreachable=True) starts without the unreachable "
        "ones"), refused.value


def counting_with_pid(config):
    with open(os.path.join(config["pids"], str(os.getpid())), "w"):
        pass  # the test finds this attempt's worker by it
    counting(config)


def test_a_worker_behind_a_stalled_connection_is_ended_once_the_host_is_back(one_host, tmp_path, monkeypatch, caplog):
    # The sshd process of host0's connection is stopped (SIGSTOP, as a host swapping hard): the
    # worker's pipes stay open, so neither it nor its watchdog sees the driver give the connection
    # up. Before, it trained on (holding the host's CPUs and GPUs) until that sshd ran again.
    import psutil

    from asynctune.executors.ssh import host as host_module

    monkeypatch.setattr(host_module, "_STALL_LIMIT_S", 1.0)
    lab = one_host
    pids = tmp_path / "pids"
    pids.mkdir()
    executor = _executor(lab, str(tmp_path / "remote"))
    stopped: list[psutil.Process] = []
    ended: list[float] = []

    def alive(process: psutil.Process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE  # its stopped parent cannot reap it
        except psutil.NoSuchProcess:
            return False

    async def stall_host0_then_watch_its_worker() -> None:
        while not any(os.listdir(pids)):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        worker = psutil.Process(int(os.listdir(pids)[0]))
        session = worker.parent()
        assert "sshd" in session.name(), session.name()
        session.suspend()
        stopped.append(session)
        began = time.monotonic()
        while alive(worker) and time.monotonic() - began < 30:
            await asyncio.sleep(0.05)
        ended.append(time.monotonic() - began)

    async def main():
        attack = asyncio.ensure_future(stall_host0_then_watch_its_worker())
        try:
            analysis = await at.run_async(counting_with_pid, config={"until": 60, "sleep": 0.1, "pids": str(pids)},
                                          executor=executor, max_failures=2, time_budget_s=60,
                                          storage_path=str(tmp_path / "driver"), verbose=0)
            await attack
            return analysis
        finally:
            attack.cancel()
            for session in stopped:
                session.resume()

    caplog.set_level(logging.INFO)
    analysis = asyncio.run(main())
    assert ended and ended[0] < 20, f"the stalled connection's worker still ran {ended}s after the stall"
    assert analysis.trials[0].status is at.Status.TERMINATED and analysis.trials[0].last_result["count"] == 60
    assert any("ended the workers its stalled connection left running" in r.getMessage() for r in caplog.records)
