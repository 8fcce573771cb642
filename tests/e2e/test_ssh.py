"""The SSH executor against real sshd servers on 127.0.0.1 (several ports act as several hosts).

The remote Python is this interpreter; the hosts' workers import this checkout's asynctune
(the host's env sets PYTHONPATH) and this test module (the executor copies tests/ as the
working_dir), so the trainables below travel by reference, as a user's project code does.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pickle
import re
import signal
import stat
import sys
import time

import pytest

import asynctune as at
from asynctune.store.signing import load_signed_pickle
from asynctune.errors import ExecutorError, HostUnreachable
from asynctune.executors.ssh.hosts import Host, parse_hosts, read_hosts_file

from asynctune.worker.protocol import TrialRequest
from asynctune.core.resources import Placement
from tests.helpers.sshd import SSHLab, sshd_missing, start_lab, start_server

ssh = pytest.importorskip("asynctune.executors.ssh.executor", reason="asyncssh is not installed")

pytestmark = pytest.mark.ssh
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ASYNCTUNE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(at.__file__)))
needs_sshd = pytest.mark.skipif(sshd_missing() is not None, reason=sshd_missing() or "")


def counting(config):
    """Counts to config["until"], checkpointing every step; a restored trial continues its count."""
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    print(f"trial {at.get_trial_id()} starts at {count} on {at.get_trial_resources()['host']}", flush=True)
    while count < config["until"]:
        count += 1
        time.sleep(config["sleep"])
        at.report(count=count, host=at.get_trial_resources()["host"], restored=checkpoint is not None,
                  checkpoint={"count": count})


def dies_once(config):
    """Its worker is SIGKILLed after the first checkpoint; the retry continues from it."""
    if at.get_checkpoint() is None:
        at.report(step=1, checkpoint={"step": 1})
        os.kill(os.getpid(), signal.SIGKILL)
    at.report(step=at.get_checkpoint()["step"] + 1)


def sleeps_or_fails(config):
    """Trial 0 starts and sleeps; then trial 1 fails, and fail_fast ends the experiment."""
    if config["x"] == 0:
        at.report(started=1)
        open(config["flag"], "w").close()
        time.sleep(600)
    while not os.path.exists(config["flag"]):
        time.sleep(0.01)
    raise RuntimeError("boom")


# Host specs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("gpu1", Host("gpu1")),
    ("alice@gpu2:2222", Host("gpu2", user="alice", port=2222)),
    ("[fe80::1]:22", Host("fe80::1", port=22)),
    ({"host": "bob@gpu3", "cpus": 4, "gpus": [0, 2], "env": {"HF_HOME": "/s"}},
     Host("gpu3", user="bob", cpus=4, gpus=(0, 2), env={"HF_HOME": "/s"})),
], ids=["alias", "user-host-port", "ipv6", "dict"])
def test_host_specs_parse(spec, expected):
    assert Host.parse(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("user@", "expected"),
    ({"host": "a", "cpu": 2}, "unknown keys"),
    ({"host": "a", "cpus": 0}, "cpus must be > 0"),
    ({"host": "a", "port": 70000}, "port must be"),
    ({"host": "a", "gpus": "all"}, "gpus must be"),
], ids=["no-host", "unknown-key", "zero-cpus", "bad-port", "bad-gpus"])
def test_bad_host_specs_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        Host.parse(spec)


def test_host_names_must_be_distinct():
    with pytest.raises(ValueError, match="distinct"):
        parse_hosts(["gpu1", {"host": "gpu1", "cpus": 2}])
    assert [h.label for h in parse_hosts(["gpu1", {"host": "gpu1", "name": "gpu1-b"}])] == ["gpu1", "gpu1-b"]


@pytest.mark.parametrize("name, text", [
    ("hosts", "# lab\ngpu1 cpus=8 gpus=0,1\nalice@gpu2:2222 python=/opt/py/bin/python env.HF_HOME=/s  # big one\n"),
    ("hosts.toml", '[[hosts]]\nhost = "gpu1"\ncpus = 8\ngpus = [0, 1]\n'
                   '[[hosts]]\nhost = "alice@gpu2:2222"\npython = "/opt/py/bin/python"\nenv = {HF_HOME = "/s"}\n'),
], ids=["lines", "toml"])
def test_hosts_files(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_hosts_file(path) == [
        Host("gpu1", cpus=8, gpus=(0, 1)),
        Host("gpu2", user="alice", port=2222, python="/opt/py/bin/python", env={"HF_HOME": "/s"}),
    ]


def test_hosts_file_errors_name_the_line(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("gpu1\ngpu2 colour=blue\n")
    with pytest.raises(ValueError, match=r"hosts:2: unknown option 'colour'"):
        read_hosts_file(path)


def test_project_files_leave_out_what_gitignore_excludes(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "train.py").write_text("x = 1\n")
    (tmp_path / "data" / "big.bin").write_bytes(b"0" * 10)
    (tmp_path / ".gitignore").write_text("data/\n")
    assert ssh.project_files(str(tmp_path)) == [".gitignore", "data/big.bin", "train.py"]  # not a git repo
    os.system(f"git -C {tmp_path} init -q")
    assert ssh.project_files(str(tmp_path)) == [".gitignore", "train.py"]


@pytest.mark.parametrize("change, message", [
    ({}, None),
    ({"python": "3.8.10"}, r"host h: runs Python 3\.8\.10 .* same major\.minor"),
    ({"asynctune": "9.9"}, r"host h: has asynctune 9\.9, the driver"),
    ({"error": "ModuleNotFoundError: No module named 'asynctune'"}, r"host h: asynctune cannot be imported"),
], ids=["same", "other-python", "other-asynctune", "no-asynctune"])
def test_compatibility_problems_name_the_host(change, message):
    info = {"python": ".".join(map(str, sys.version_info[:3])), "asynctune": at.__version__, "executable": "py",
            **change}
    problem = ssh.compatibility_problem("h", info)
    assert problem is None if message is None else re.search(message, problem)


@pytest.mark.parametrize("limits, cpus, gpus", [
    ({}, 64.0, [0, 1, 2, 3]),
    ({"cpus": 8, "gpus": 2}, 8.0, [0, 1]),
    ({"gpus": [1, 3]}, 64.0, [1, 3]),
], ids=["all", "counts", "indices"])
def test_host_limits_shape_its_inventory(limits, cpus, gpus):
    info = {"cpus": 64, "gpus": [{"index": i, "name": "A100", "memory_total_mb": 40960.0, "future_field": 1}
                                 for i in range(4)]}
    remote = ssh._RemoteHost(ssh.SSHExecutor(["gpu1"]), Host("gpu1", **limits))
    inventory = remote._make_inventory(info)
    assert (inventory.name, inventory.cpus, [g.index for g in inventory.gpus]) == ("gpu1", cpus, gpus)


@pytest.mark.parametrize("options, message", [
    ({"connect_timeout_s": 0}, "connect_timeout_s must be > 0"),
    ({"reconnect_backoff_s": (5, 1)}, "reconnect_backoff_s must be"),
    ({"kill_grace_s": -1}, "kill_grace_s must be >= 0"),
    ({"working_dir": "/no/such/folder"}, "working_dir must be an existing folder"),
    ({"sessions_per_connection": 1}, "sessions_per_connection must be in 2..64"),
], ids=["timeout", "backoff", "grace", "working-dir", "sessions"])
def test_executor_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        ssh.SSHExecutor(["gpu1"], **options)


def test_naming_a_gpu_the_host_lacks_is_an_error():
    remote = ssh._RemoteHost(ssh.SSHExecutor(["gpu1"]), Host("gpu1", gpus=(0, 5)))
    with pytest.raises(ExecutorError, match=r"host gpu1: gpus=\[0, 5\] names GPUs \[5\]"):
        remote._make_inventory({"cpus": 4, "gpus": [{"index": 0}, {"index": 1}]})


# Against real sshd servers ---------------------------------------------------------------------------


def started_lab(root: str) -> SSHLab:
    if sshd_missing():
        pytest.skip(sshd_missing())
    try:
        return start_lab(root, 2)
    except RuntimeError as exc:
        if os.geteuid() == 0:
            raise
        pytest.skip(f"sshd does not start without root here: {exc}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = started_lab(str(tmp_path_factory.mktemp("sshlab")))
    yield lab
    lab.stop()


@pytest.fixture
def own_lab(tmp_path):
    """Servers for a test that kills one."""
    lab = started_lab(str(tmp_path / "sshlab"))
    yield lab
    lab.stop()


def lab_hosts(lab: SSHLab, remote_root: str, cpus=(1, 1), **overrides) -> list[dict]:
    return [{"host": server.alias, "python": sys.executable, "workdir": os.path.join(remote_root, server.alias),
             "env": {"PYTHONPATH": ASYNCTUNE_ROOT}, "cpus": cpus[i], **overrides.get(server.alias, {})}
            for i, server in enumerate(lab.servers)]


def executor_for(lab: SSHLab, hosts: list[dict], **options) -> ssh.SSHExecutor:
    return ssh.SSHExecutor(hosts, ssh_config=lab.ssh_config, working_dir=TESTS_DIR, **options)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


@needs_sshd
def test_experiment_runs_across_two_hosts_within_their_cpus_and_copies_checkpoints_back(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    storage = str(tmp_path / "driver")
    analysis = at.run(counting, config={"until": 3, "sleep": 0.05, "x": at.grid_search(list(range(6)))},
                      executor=executor_for(lab, lab_hosts(lab, remote_root, cpus=(1, 2)), keep_remote_files=True),
                      storage_path=storage, name="pool", verbose=0)
    trials = analysis.trials
    assert [t.status for t in trials] == [at.Status.TERMINATED] * 6
    assert all(t.last_result["count"] == 3 for t in trials)

    by_host: dict[str, list[tuple[float, float]]] = {}
    for trial in trials:
        with open(os.path.join(trial.path, "result.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        assert len({r["host"] for r in rows}) == 1
        start = rows[0]["timestamp"] - rows[0]["time_this_iter_s"]
        by_host.setdefault(rows[0]["host"], []).append((start, rows[-1]["timestamp"]))
    assert sorted(by_host) == ["host0", "host1"]
    assert max_overlap(by_host["host0"]) == 1  # cpus=1
    assert max_overlap(by_host["host1"]) <= 2  # cpus=2

    for trial in trials:
        # The controller only ever saw driver paths, and every reported checkpoint is there.
        assert trial.checkpoint == os.path.join(trial.path, "checkpoint_000003")
        for step in (1, 2, 3):  # written on the host, signed there with the driver's key: they verify here
            path = os.path.join(trial.path, f"checkpoint_{step:06d}", "checkpoint.pkl")
            assert load_signed_pickle(path) == {"count": step}
        with open(os.path.join(trial.path, "stdout.txt")) as f:
            assert f"trial {trial.trial_id} starts at 0" in f.read()
    assert all(t.checkpoint.startswith(storage + os.sep) for t in trials)
    # The trials ran in the hosts' own folders, which keep only each trial's latest checkpoint.
    remote_trials = sorted(glob.glob(os.path.join(remote_root, "*", "experiments", "pool-*", "trial_*")))
    assert sorted(os.path.basename(p) for p in remote_trials) == [t.trial_id for t in trials]
    for path in remote_trials:
        assert sorted(n for n in os.listdir(path) if n.startswith("checkpoint")) == ["checkpoint_000003"]
    assert glob.glob(os.path.join(remote_root, "*", "code", "*", "test_ssh.py"))  # working_dir was copied


class PauseOneMutateOther(at.Scheduler):
    """Pauses trial 0 at count 2 (it resumes from its checkpoint); moves trial 1 onto a donor's."""

    def __init__(self, donor: str) -> None:
        super().__init__()
        self.donor = donor

    def on_trial_result(self, trial, result):
        if result["count"] == 2 and not result["restored"]:
            if trial.index == 0:
                return at.PAUSE
            return at.Mutate({**trial.config, "until": 103}, self.donor)
        return at.CONTINUE


@needs_sshd
def test_pause_and_mutate_send_driver_checkpoints_to_the_host(lab, tmp_path):
    donor = tmp_path / "donor"
    donor.mkdir()
    from asynctune.store.signing import sign  # made by this user: signed with the driver's key

    (donor / "checkpoint.pkl").write_bytes(sign(pickle.dumps({"count": 100})))
    (donor / ".asynctune.json").write_text(json.dumps({"trial_id": "donor", "iteration": 7, "time_total_s": 1.0}))
    analysis = at.run(counting, config={"until": 4, "sleep": 0.01, "x": at.grid_search([0, 1])},
                      scheduler=PauseOneMutateOther(str(donor)), storage_path=str(tmp_path / "driver"), verbose=0,
                      executor=executor_for(lab, lab_hosts(lab, str(tmp_path / "remote"))))
    paused, mutated = analysis.trials
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
    rows = [json.loads(line) for line in open(os.path.join(paused.path, "result.jsonl"))]
    assert [(r["count"], r["restored"]) for r in rows] == [(1, False), (2, False), (3, True), (4, True)]
    rows = [json.loads(line) for line in open(os.path.join(mutated.path, "result.jsonl"))]
    assert [r["count"] for r in rows] == [1, 2, 101, 102, 103]
    assert [r["training_iteration"] for r in rows[2:]] == [8, 9, 10]
    # The hosts' copies of the trial folders are removed at the end: the driver has it all.
    assert glob.glob(str(tmp_path / "remote" / "*" / "experiments" / "*" / "trial_*")) == []
    assert glob.glob(str(tmp_path / "remote" / "*" / "code" / "*"))


def modes_under(root) -> dict[str, set[str]]:
    """The permission bits of every folder and file under `root` (itself included)."""
    found: dict[str, set[str]] = {"dirs": {oct(stat.S_IMODE(os.stat(root).st_mode))}, "files": set()}
    for directory, subdirs, names in os.walk(root):
        found["dirs"] |= {oct(stat.S_IMODE(os.stat(os.path.join(directory, d)).st_mode)) for d in subdirs}
        found["files"] |= {oct(stat.S_IMODE(os.stat(os.path.join(directory, n)).st_mode)) for n in names}
    return found


@needs_sshd
def test_files_on_the_host_and_checkpoints_copied_back_are_private(lab, tmp_path):
    donor = tmp_path / "donor"  # a driver checkpoint the mutation uploads to the host
    donor.mkdir()
    from asynctune.store.signing import sign  # made by this user: signed with the driver's key

    (donor / "checkpoint.pkl").write_bytes(sign(pickle.dumps({"count": 100})))
    (donor / ".asynctune.json").write_text(json.dumps({"trial_id": "donor", "iteration": 7, "time_total_s": 1.0}))
    os.chmod(donor / "checkpoint.pkl", 0o644)
    remote_root = tmp_path / "remote"
    workdir = remote_root / "host0"
    workdir.mkdir(parents=True)
    os.chmod(workdir, 0o755)  # left so by an older asynctune
    hosts = lab_hosts(lab, str(remote_root))[:1]
    analysis = at.run(counting, config={"until": 4, "sleep": 0.01, "x": at.grid_search([0, 1])},
                      scheduler=PauseOneMutateOther(str(donor)), storage_path=str(tmp_path / "driver"), verbose=0,
                      executor=executor_for(lab, hosts, keep_remote_files=True))
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
    assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700
    (experiment,) = glob.glob(str(workdir / "experiments" / "*"))
    assert glob.glob(os.path.join(experiment, "*", "checkpoint_clone_*", "checkpoint.pkl"))  # uploaded (SFTP)
    assert glob.glob(os.path.join(experiment, "*", "checkpoint_*", "checkpoint.pkl"))
    assert glob.glob(os.path.join(experiment, "*", "stdout.txt"))
    assert modes_under(experiment) == {"dirs": {"0o700"}, "files": {"0o600"}}
    (code,) = glob.glob(str(workdir / "code" / "*"))
    assert modes_under(code) == {"dirs": {"0o700"}, "files": {"0o600"}}
    for trial in analysis.trials:  # the driver's copies of the host's checkpoints (not the clone it made)
        copies = glob.glob(os.path.join(trial.path, "checkpoint_[0-9]*"))
        assert copies
        for copy in copies:
            assert modes_under(copy) == {"dirs": {"0o700"}, "files": {"0o600"}}


@needs_sshd
def test_a_host_killed_mid_experiment_loses_no_checkpointed_progress(own_lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    executor = executor_for(own_lab, lab_hosts(own_lab, remote_root), reconnect_backoff_s=(0.2, 0.5),
                            keepalive_interval_s=1)
    availability: list[bool] = []
    executor.watch_hosts(lambda: availability.append(executor.host_available("host0")))

    async def kill_host0_after_its_first_checkpoints() -> None:
        # a trial of host0 whose checkpoint 2 the driver has whole (copies run in the background)
        pattern = os.path.join(remote_root, "host0", "experiments", "*", "trial_*")
        driver = tmp_path / "driver" / "faults"
        while not any((driver / os.path.basename(p) / "checkpoint_000002").is_dir() for p in glob.glob(pattern)):
            await asyncio.sleep(0.02)
        own_lab.servers[0].kill()  # its sshd, its sessions and its workers

    async def main():
        killer = asyncio.ensure_future(kill_host0_after_its_first_checkpoints())
        try:
            return await at.run_async(counting, config={"until": 20, "sleep": 0.1, "x": at.grid_search([0, 1, 2])},
                                      executor=executor, max_failures=2, storage_path=str(tmp_path / "driver"),
                                      name="faults", verbose=0)
        finally:
            killer.cancel()

    analysis = asyncio.run(main())
    trials = analysis.trials
    assert [t.status for t in trials] == [at.Status.TERMINATED] * 3
    assert all(t.last_result["count"] == 20 for t in trials)
    lost = [t for t in trials if t.num_failures]
    assert len(lost) == 1 and "host0" in lost[0].error
    with open(os.path.join(lost[0].path, "result.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    counts = [r["count"] for r in rows]
    retry = next(i for i, r in enumerate(rows) if r["restored"])
    # The retry ran on host1, from the last checkpoint copied off host0: the count went on, not back to 1.
    assert rows[retry]["host"] == "host1" and counts[retry] >= 3
    assert counts[retry] == counts[retry - 1] or counts[retry] == counts[retry - 1] + 1
    # The callback runs on any host's change (host1's keepalive may flap on a loaded machine):
    # host0's own first change is the one that counts, and it is going down.
    changes = [up for before, up in zip([True, *availability], availability) if up != before]
    assert changes[:1] == [False]


@needs_sshd
def test_a_killed_worker_is_retried_and_its_host_stays_up(lab, tmp_path):
    analysis = at.run(dies_once, config={}, max_failures=1, storage_path=str(tmp_path / "driver"), verbose=0,
                      executor=executor_for(lab, lab_hosts(lab, str(tmp_path / "remote"))[:1]))
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    assert "killed by SIGKILL" in trial.error
    assert trial.last_result["step"] == 2


async def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@needs_sshd
def test_a_down_host_takes_no_trials_and_is_reconnected(own_lab, tmp_path):
    executor = executor_for(own_lab, lab_hosts(own_lab, str(tmp_path / "remote")), reconnect_backoff_s=(0.1, 0.2))
    changes: list[bool] = []
    executor.watch_hosts(lambda: changes.append(executor.host_available("host0")))
    request = TrialRequest(trial_id="t", trial_dir=str(tmp_path / "driver" / "t"), config={}, trainable_key="k",
                           trainable_blob=None, experiment_dir=str(tmp_path / "driver"))

    async def main():
        async with executor:
            assert executor.host_available("host0") and executor.host_available("host1")
            own_lab.servers[0].kill()
            await wait_until(lambda: not executor.host_available("host0"))
            with pytest.raises(HostUnreachable, match="host host0 unreachable: it is down"):
                await executor.launch(request, Placement("host0", 1.0))
            assert executor.host_available("host1")
            start_server(own_lab, "host0")
            await wait_until(lambda: executor.host_available("host0"))

    asyncio.run(main())
    assert changes == [False, True]


@needs_sshd
def test_ending_the_experiment_kills_remote_trials_and_leaves_no_process(lab, tmp_path):
    start = time.time()
    with pytest.raises(at.TrialFailed, match="boom"):
        at.run(sleeps_or_fails, config={"x": at.grid_search([0, 1]), "flag": str(tmp_path / "started")},
               fail_fast=True, storage_path=str(tmp_path / "driver"), verbose=0,
               executor=executor_for(lab, lab_hosts(lab, str(tmp_path / "remote")), kill_grace_s=0.5))
    assert time.time() - start < 30
    # The autouse no_leftover_processes fixture checks that trial 0's worker under sshd is gone.


@needs_sshd
def test_an_unknown_host_key_is_refused(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    executor = executor_for(lab, lab_hosts(lab, str(tmp_path / "remote"))[:1], known_hosts=str(empty))
    with pytest.raises(HostUnreachable, match=r"host host0 unreachable: its host key is not trusted"):
        asyncio.run(executor.start())


@needs_sshd
async def test_the_executors_tasks_live_in_its_task_group_and_end_with_it(lab, tmp_path):
    executor = executor_for(lab, lab_hosts(lab, str(tmp_path / "remote")), keepalive_interval_s=0.2)
    async with executor:
        # The executor starts once one host has joined; on a loaded machine the other joins later.
        for _ in range(200):
            ours = [t for t in asyncio.all_tasks() if t.get_name().startswith("asynctune-heartbeat-")]
            if len(ours) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(ours) == 2 and all(t in executor._tasks._tasks for t in ours)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("asynctune-")]
    assert not executor._tasks.is_open


def config_without_host_key_checking(lab: SSHLab, path) -> str:
    """An ssh config for host0 whose `UserKnownHostsFile none` turns host-key checking off."""
    server = lab.servers[0]
    path.write_text(f"# a user's ~/.ssh/config\nHost {server.alias}\n  HostName 127.0.0.1\n  Port {server.port}\n"
                    f"  User {lab.user}\n  IdentityFile {lab.user_key}\n  IdentitiesOnly yes\n"
                    f"  UserKnownHostsFile none\n")
    return str(path)


@needs_sshd
def test_an_ssh_config_that_turns_host_key_checking_off_is_refused_before_any_trial(lab, tmp_path):
    config = config_without_host_key_checking(lab, tmp_path / "ssh_config")
    executor = ssh.SSHExecutor(lab_hosts(lab, str(tmp_path / "remote"))[:1], ssh_config=config, working_dir=TESTS_DIR)
    storage = tmp_path / "driver"
    with pytest.raises(ExecutorError, match=(rf"host host0: your ssh config turns host-key checking off for it "
                                             rf"\({re.escape(config)}:8: UserKnownHostsFile none\).*"
                                             rf"pass known_hosts=None to SSHExecutor")):
        at.run(counting, config={"until": 1, "sleep": 0}, executor=executor, storage_path=str(storage),
               name="refused", verbose=0)
    assert not glob.glob(str(storage / "refused" / "*" / "result.jsonl"))  # no trial started
    assert not (tmp_path / "remote").exists()  # nothing ran on the host


@needs_sshd
def test_known_hosts_none_in_asynctunes_arguments_connects_with_a_warning(lab, tmp_path, caplog):
    config = config_without_host_key_checking(lab, tmp_path / "ssh_config")
    with caplog.at_level("WARNING", logger="asynctune"):
        executor = ssh.SSHExecutor(lab_hosts(lab, str(tmp_path / "remote"))[:1], ssh_config=config,
                                   working_dir=TESTS_DIR, known_hosts=None)
    assert "known_hosts=None: host keys are NOT checked (unsafe)" in caplog.text
    analysis = at.run(counting, config={"until": 2, "sleep": 0}, executor=executor,
                      storage_path=str(tmp_path / "driver"), verbose=0)
    assert [t.last_result["count"] for t in analysis.trials] == [2]


@needs_sshd
def test_a_host_with_another_asynctune_version_is_refused(lab, tmp_path):
    fake = tmp_path / "fake" / "asynctune"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '0.0.0-fake'\n")
    hosts = lab_hosts(lab, str(tmp_path / "remote"),
                      host1={"env": {"PYTHONPATH": f"{fake.parent}:{ASYNCTUNE_ROOT}"}})
    with pytest.raises(ExecutorError, match=r"host host1: has asynctune 0\.0\.0-fake, the driver 0\."):
        asyncio.run(executor_for(lab, hosts).start())


@needs_sshd
def test_check_hosts_reports_each_host(lab, tmp_path, capsys):
    hosts = lab_hosts(lab, str(tmp_path / "remote"), cpus=(3, 1))[:1] + ["127.0.0.1:1"]
    rows = ssh.check_hosts(hosts, ssh_config=lab.ssh_config, known_hosts=lab.known_hosts,
                           client_keys=[lab.user_key], connect_timeout_s=5)
    good, bad = rows
    assert good["host"] == "host0" and good["reachable"] and good["reason"] == ""
    assert good["python"] == ".".join(map(str, sys.version_info[:3])) and good["asynctune"] == at.__version__
    assert good["cpus"] == 3 and good["gpus"] == [] and 0 < good["latency_ms"] < 1000  # what it offers: cpus=3
    assert bad["host"] == "127.0.0.1:1" and not bad["reachable"] and "cannot connect" in bad["reason"]
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(f"host0 python={sys.executable} workdir={tmp_path / 'remote'} env.PYTHONPATH={ASYNCTUNE_ROOT}\n")
    code = ssh.main(["check", "--hosts-file", str(hosts_file), "-F", lab.ssh_config, "127.0.0.1:1"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1  # one host is unreachable
    assert lines[1].split()[:4] == ["127.0.0.1:1", "unreachable", "-", "-"]
    assert lines[3].split()[:4] == ["host0", "ok", sys.version.split()[0], at.__version__]
