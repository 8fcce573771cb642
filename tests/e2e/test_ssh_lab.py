"""A lab's first day with the SSH executor, against real sshd servers on 127.0.0.1.

Each test drives the executor as docs/ssh.md tells a user to: hosts files, `hosts check`,
resuming after the driver died, a project folder with its own modules and odd files.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import asynctune as at
from asynctune.errors import ExecutorError, HostKeyRefused
from tests.e2e.test_ssh import counting  # counts, a checkpoint each step; a restored trial goes on
from tests.helpers.sshd import SSHLab, sshd_missing, start_lab, start_server

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


def killed_midway(hosts: list[dict], lab: SSHLab, storage: str) -> tuple[str, set[str]]:
    """An experiment on `hosts` whose driver was SIGKILLed once a checkpoint reached it: its
    directory, and the trials that had a checkpoint on the driver then."""
    arguments = json.dumps([hosts, lab.ssh_config, TESTS_DIR, storage])
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
    return experiment, copied


def assert_resumed(analysis, copied: set[str]) -> None:
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 3
    for trial in analysis.trials:
        rows = results(trial.path)
        assert [r["count"] for r in rows] == list(range(1, 31))  # every iteration once, none lost
        if trial.trial_id in copied:  # it went on from its checkpoint on the driver, not from scratch
            assert rows[-1]["restored"]


def test_an_ssh_experiment_whose_driver_was_killed_resumes_from_its_checkpoints(lab, tmp_path):
    experiment, copied = killed_midway(host_specs(lab, str(tmp_path / "remote")), lab, str(tmp_path / "driver"))
    # The executor saved with the experiment reconnects to the same hosts.
    assert_resumed(at.resume(experiment, verbose=0), copied)


def test_run_with_resume_uses_the_executor_it_is_given(lab, tmp_path):
    # A lab's hosts change between the kill and the resume (one is gone): rerunning the script with
    # resume=True and the new hosts must run on them. Before, the first run's executor was used.
    first, second = host_specs(lab, str(tmp_path / "remote"))
    experiment, copied = killed_midway([first], lab, str(tmp_path / "driver"))
    analysis = at.run(counting, config={"until": 30, "sleep": 0.1, "x": at.grid_search([0, 1, 2])}, name="lab",
                      storage_path=str(tmp_path / "driver"), verbose=0, resume=True,
                      executor=ssh.SSHExecutor([second], ssh_config=lab.ssh_config, working_dir=TESTS_DIR))
    assert_resumed(analysis, copied)
    for trial in analysis.trials:
        assert results(trial.path)[-1]["host"] == "host1"


# The project folder ------------------------------------------------------------------------------


def uses_the_project(config):
    """Imports a module that exists only in working_dir, reads its files through links."""
    import labhelper  # in the project folder, nowhere else

    with open(os.path.join("datalink", "weights.bin"), "rb") as f:  # through a link to a folder
        weights = f.read()
    at.report(scaled=labhelper.scale(config["x"]), weights=hashlib.sha256(weights).hexdigest(),
              notes=open("notes.txt").read(), dangling=os.readlink("dangling"), shared=os.listdir("shared"),
              ignored=os.path.exists("outputs"), lab=os.environ.get("LAB_NAME"), cwd=os.getcwd(),
              trial_dir=at.get_trial_dir(), host=at.get_trial_resources()["host"])


def make_project(root, git: bool) -> str:
    """A lab's project: a helper module, a 5 MB file, links to a file, to a folder inside the
    project, to one outside it (a shared mount) and to nothing; an ignored outputs folder."""
    project, shared = root / "project", root / "shared"
    (project / "data").mkdir(parents=True)
    shared.mkdir()
    (shared / "imagenet").write_text("a shared dataset")
    (project / "labhelper.py").write_text("def scale(x):\n    return 10 * x\n")
    (project / "data" / "weights.bin").write_bytes(os.urandom(5 * 2**20))
    (project / "README").write_text("read me\n")
    os.symlink("README", project / "notes.txt")
    os.symlink("data", project / "datalink")
    os.symlink(str(shared), project / "shared")
    os.symlink("/nonexistent/on/the/driver", project / "dangling")
    (project / "outputs").mkdir()
    (project / "outputs" / "run.log").write_text("not for the hosts")
    (project / ".gitignore").write_text("outputs/\n")
    if git:
        subprocess.run(["git", "-C", str(project), "init", "-q"], check=True)
    else:
        shutil.rmtree(project / "outputs")  # without git, .gitignore means nothing: leave nothing to ignore
    return str(project)


@pytest.mark.parametrize("git", [False, True], ids=["plain-folder", "git-repo"])
def test_a_project_folder_with_modules_big_files_and_links_reaches_every_host(lab, tmp_path, git):
    project = make_project(tmp_path, git)
    hosts = [{**h, "env": {**h["env"], "LAB_NAME": f"lab-{h['host']}"}} for h in host_specs(lab, str(tmp_path / "remote"))]
    analysis = at.run(uses_the_project, config={"x": at.grid_search([1, 2, 3, 4])}, verbose=0,
                      executor=ssh.SSHExecutor(hosts, ssh_config=lab.ssh_config, working_dir=project,
                                               keep_remote_files=True),
                      storage_path=str(tmp_path / "driver"))
    with open(os.path.join(project, "data", "weights.bin"), "rb") as f:
        weights = hashlib.sha256(f.read()).hexdigest()
    rows = [t.last_result for t in analysis.trials]
    assert sorted(r["scaled"] for r in rows) == [10, 20, 30, 40]
    assert {r["host"] for r in rows} == {"host0", "host1"}
    for row in rows:
        assert row["weights"] == weights and row["notes"] == "read me\n" and row["shared"] == ["imagenet"]
        assert row["dangling"] == "/nonexistent/on/the/driver" and not row["ignored"]
        assert row["lab"] == f"lab-{row['host']}"
        workdir = os.path.join(str(tmp_path / "remote"), row["host"])
        assert row["cwd"].startswith(os.path.join(workdir, "code") + os.sep)
        assert row["trial_dir"].startswith(os.path.join(workdir, "experiments") + os.sep)
        assert os.path.isdir(row["trial_dir"])  # the trial's folder on its host, kept by keep_remote_files




def test_a_host_showing_fewer_gpus_than_its_spec_asks_for_is_refused_saying_why(lab, tmp_path):
    # A lab's first-day trap: nvidia-ml-py (asynctune[gpu]) missing on the host, which then looked
    # like a CPU-only host: its gpus=2 was cut silently to 0, and GPU trials could never be placed.
    from asynctune.core.gpu import probe_gpus, why_no_gpu

    here = len(probe_gpus())  # the hosts are this machine
    spec = {**host_specs(lab, str(tmp_path / "remote"))[0], "gpus": here + 1}
    row, = ssh.check_hosts([spec], ssh_config=lab.ssh_config)
    expected = f"host host0: gpus={here + 1} asks for {here + 1} GPUs, but it shows {here}"
    assert row["reachable"] and row["reason"].startswith(expected), row["reason"]
    if not here:
        assert why_no_gpu() in row["reason"]  # no driver, no nvidia-ml-py...: what to fix
    with pytest.raises(ExecutorError, match=re.escape(expected)):
        asyncio.run(ssh.SSHExecutor([spec], ssh_config=lab.ssh_config).start())



# The user's own ~/.ssh ---------------------------------------------------------------------------


def home_with_ssh_config(lab: SSHLab, home, extra: str = "") -> None:
    """A HOME whose ~/.ssh holds the lab's key, aliases gpu0/gpu1 and known_hosts, hashed, as
    `ssh` writes them: under the HostName and port ([127.0.0.1]:port), not the alias."""
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(parents=True)
    shutil.copy(lab.user_key, dot_ssh / "id_lab")
    (dot_ssh / "config").write_text("".join(
        f"Host gpu{i}\n  HostName 127.0.0.1\n  Port {s.port}\n  User {lab.user}\n  IdentityFile ~/.ssh/id_lab\n{extra}"
        for i, s in enumerate(lab.servers)))
    shutil.copy(lab.known_hosts, dot_ssh / "known_hosts")
    subprocess.run(["ssh-keygen", "-H", "-f", str(dot_ssh / "known_hosts")], check=True, capture_output=True)


def test_aliases_of_the_users_ssh_config_with_hashed_known_hosts_connect(lab, tmp_path, monkeypatch):
    home_with_ssh_config(lab, tmp_path / "home")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with open(tmp_path / "home" / ".ssh" / "known_hosts") as f:
        assert "127.0.0.1" not in f.read()  # hashed
    hosts = [{**spec, "host": f"gpu{i}"} for i, spec in enumerate(host_specs(lab, str(tmp_path / "remote")))]
    rows = ssh.check_hosts(hosts)
    assert [(r["host"], r["reason"]) for r in rows] == [("gpu0", ""), ("gpu1", "")]


def test_a_users_ssh_config_that_turns_host_key_checking_off_is_refused(lab, tmp_path, monkeypatch):
    # The guard read only an ssh_config= given to asynctune: the user's own ~/.ssh/config, which asyncssh
    # reads by default, let any host key through (an empty known_hosts here, and the host was "ok").
    home_with_ssh_config(lab, tmp_path / "home", extra="  UserKnownHostsFile none\n")
    (tmp_path / "home" / ".ssh" / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    host = {**host_specs(lab, str(tmp_path / "remote"))[0], "host": "gpu0"}
    config = tmp_path / "home" / ".ssh" / "config"
    expected = f"host gpu0: your ssh config turns host-key checking off for it ({config}:6: UserKnownHostsFile none"
    row, = ssh.check_hosts([host])
    assert not row["reachable"] and row["reason"].startswith(expected), row["reason"]
    with pytest.raises(ExecutorError, match=re.escape(expected)):
        at.run(counting, config={"until": 1, "sleep": 0}, verbose=0, storage_path=str(tmp_path / "driver"),
               executor=ssh.SSHExecutor([host]))
    assert not (tmp_path / "remote").exists()  # nothing ran on the host



def test_a_changed_host_key_is_told_apart_from_an_unknown_one(lab, tmp_path, monkeypatch):
    # Before, both read "it is missing from known_hosts or has changed": the alarming case (a machine
    # in the middle, or a reinstalled host) looked like the first day's "log in once".
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    server = lab.servers[0]
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(f"[127.0.0.1]:{server.port} {key_type} {key}\n")
    unknown = tmp_path / "known_hosts_unknown"
    unknown.write_text(f"[127.0.0.1]:{lab.servers[1].port} {key_type} {key}\n")  # another host's line only
    spec = {**host_specs(lab, str(tmp_path / "remote"))[0], "host": f"{lab.user}@127.0.0.1:{server.port}", "name": "gpu0"}
    row, = ssh.check_hosts([spec], known_hosts=str(changed), client_keys=[lab.user_key])
    assert f"it CHANGED: {changed} holds another key for it" in row["reason"], row["reason"]
    row, = ssh.check_hosts([spec], known_hosts=str(unknown), client_keys=[lab.user_key])
    assert "it is unknown, missing from known_hosts=" in row["reason"] and "CHANGED" not in row["reason"], row["reason"]

    # The same through the user's ~/.ssh (an alias, hashed known_hosts), where ssh would find it.
    home_with_ssh_config(lab, tmp_path / "home")
    known_hosts = tmp_path / "home" / ".ssh" / "known_hosts"
    known_hosts.write_text(changed.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(HostKeyRefused, match=f"it CHANGED: {re.escape(str(known_hosts))} holds another key"):
        asyncio.run(ssh.SSHExecutor([{**spec, "host": "gpu0", "name": None}]).start())


# Messages that tell the user what to run ------------------------------------------------------------


def test_a_refused_login_or_unknown_key_names_an_ssh_command_for_that_address_user_and_port(lab, tmp_path):
    server = lab.servers[0]
    spec = {"host": f"{lab.user}@127.0.0.1:{server.port}", "name": "gpu-a", "python": sys.executable}
    stranger = str(tmp_path / "id_stranger")  # a key the host does not authorize
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger], check=True)
    row, = ssh.check_hosts([spec], known_hosts=lab.known_hosts, client_keys=[stranger], connect_timeout_s=10)
    command = (f"ssh -o BatchMode=yes -o UserKnownHostsFile={lab.known_hosts} -i {stranger} -p {server.port} "
               f"{lab.user}@127.0.0.1 true")
    assert not row["reachable"] and f"no key was accepted; check that `{command}` works" in row["reason"], row["reason"]
    # With the lab's key that very command logs in: it names the host, not the pool's name for it.
    login = subprocess.run(command.replace(stranger, lab.user_key).split(), capture_output=True, text=True, timeout=30)
    assert login.returncode == 0, login.stderr

    (tmp_path / "empty").write_text("")
    row, = ssh.check_hosts([spec], known_hosts=str(tmp_path / "empty"), client_keys=[lab.user_key])
    assert (f"log in once with `ssh -o UserKnownHostsFile={tmp_path / 'empty'} -p {server.port} {lab.user}@127.0.0.1`"
            in row["reason"]), row["reason"]




# env= and workdir= -------------------------------------------------------------------------------


def reports_its_environment(config):
    at.report(env={name: os.environ.get(name) for name in config["names"]}, home=os.path.expanduser("~"),
              user=os.environ.get("USER"), trial_dir=at.get_trial_dir())


def test_env_values_may_use_the_hosts_variables_and_workdir_too(lab, tmp_path):
    # Before, values were literal: env.PATH=/opt/lab/bin:$PATH set PATH to "/opt/lab/bin:$PATH", so
    # python3 (the default python=) was not found and the host was refused with "is 'python3' the
    # host's Python?"; env.HF_HOME=~/hf made a folder named "~" in the code copy.
    env = {"PATH": "/opt/lab/bin:$PATH", "HF_HOME": "~/hf", "CACHE": "${HOME}/cache:$USER", "PRICE": "5$$ 'each'",
           "PLAIN": "a b;c $$(echo no)"}
    host = {**host_specs(lab, str(tmp_path / "remote"))[0], "workdir": str(tmp_path / "remote" / "$USER")}
    host["env"] = {**host["env"], **env}
    analysis = at.run(reports_its_environment, config={"names": sorted(env)}, verbose=0,
                      executor=ssh.SSHExecutor([host], ssh_config=lab.ssh_config, working_dir=TESTS_DIR),
                      storage_path=str(tmp_path / "driver"))
    result = analysis.trials[0].last_result
    seen, home, user = result["env"], result["home"], result["user"]
    assert seen["PATH"].startswith("/opt/lab/bin:") and "/usr/bin" in seen["PATH"].split(":"), seen["PATH"]
    assert seen["HF_HOME"] == f"{home}/hf" and seen["CACHE"] == f"{home}/cache:{user}"
    assert seen["PRICE"] == "5$ 'each'" and seen["PLAIN"] == "a b;c $(echo no)"
    assert result["trial_dir"].startswith(str(tmp_path / "remote" / user) + os.sep)


# Worker reuse ------------------------------------------------------------------------------------

_SETS_ENV = """
import os
import asynctune as at

os.environ.setdefault("LIBRARY_MODE", "auto")  # as sklearn (KMP_*) and tensorboardX (CRC32C_SW_MODE) do on import


def train(config):
    at.report(pid=os.getpid())
"""


def test_a_trainable_whose_module_sets_the_environment_on_import_still_reuses_its_worker(lab, tmp_path, monkeypatch):
    # Each trial's first use of a fresh worker imports the trainable's module; an import that sets an
    # environment variable (`from asynctune import Callback` does: tensorboardX) read as the trial
    # changing its worker's environment, so the worker was retired after every trial: each trial paid a
    # new worker over SSH (python and the user's imports: 1 s here, many on a real host).
    project = tmp_path / "project"
    project.mkdir()
    (project / "sets_env_on_import.py").write_text(_SETS_ENV)
    monkeypatch.syspath_prepend(str(project))  # the driver pickles the trainable by reference to its module
    monkeypatch.delenv("LIBRARY_MODE", raising=False)
    from sets_env_on_import import train

    monkeypatch.delenv("LIBRARY_MODE", raising=False)
    host = host_specs(lab, str(tmp_path / "remote"))[0]
    analysis = at.run(train, config={"x": at.grid_search([0, 1, 2, 3])}, max_concurrent_trials=1, verbose=0,
                      executor=ssh.SSHExecutor([host], ssh_config=lab.ssh_config, working_dir=str(project)),
                      storage_path=str(tmp_path / "driver"))
    assert len({t.last_result["pid"] for t in analysis.trials}) == 1  # one worker ran them all



def test_a_host_whose_sshd_offers_no_sftp_is_named_with_the_fix(tmp_path):
    # Before: "Session request failed" in hosts check, and an asyncssh ChannelOpenError traceback from run().
    if sshd_missing():
        pytest.skip(sshd_missing())
    lab = start_lab(str(tmp_path / "sshlab"), 0)
    try:
        lab.servers.append(start_server(lab, "hardened", sftp=False))
        host = {"host": "hardened", "python": sys.executable, "workdir": str(tmp_path / "remote"),
                "env": {"PYTHONPATH": ASYNCTUNE_ROOT}}
        expected = "host hardened: its sshd refused an SFTP session"
        row, = ssh.check_hosts([host], ssh_config=lab.ssh_config)
        assert row["reason"].startswith(expected) and "Subsystem sftp" in row["reason"], row["reason"]
        with pytest.raises(ExecutorError, match=expected):
            at.run(counting, config={"until": 1, "sleep": 0}, verbose=0, storage_path=str(tmp_path / "driver"),
                   executor=ssh.SSHExecutor([host], ssh_config=lab.ssh_config))
    finally:
        lab.stop()



def test_a_port_that_hangs_up_and_a_name_nobody_knows_are_said_plainly(tmp_path):
    # Before: "ConnectionLost: Connection lost" and "cannot connect: Name or service not known".
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def hang_up() -> None:  # a service that is not sshd, or sshd refusing at MaxStartups
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    config = tmp_path / "ssh_config"
    config.write_text("Host gpu-a\n  HostName 127.0.0.1\n")
    try:
        rows = ssh.check_hosts([f"127.0.0.1:{port}", "gpu-b.invalid"], ssh_config=str(config), connect_timeout_s=10)
    finally:
        listener.close()
    hung_up, unknown = rows
    assert hung_up["reason"] == (f"127.0.0.1 closed the connection on port {port} before the SSH handshake ended: is "
                                 f"it sshd that listens there? (sshd's MaxStartups or a firewall also close "
                                 f"connections this way)"), hung_up["reason"]
    assert unknown["reason"].startswith("cannot connect: no host 'gpu-b.invalid' is known (")
    assert unknown["reason"].endswith(f"neither DNS nor a Host entry of {config} names it"), unknown["reason"]


# Hosts files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text, message", [
    ("hosts", "gpu0 cpus=2\n\n# spare\ngpu1 gpus=x\n", r"hosts:4: gpus=x: expected a count \(gpus=2\) or GPU indices"),
    ("hosts", "gpu0\ngpu1 cpus=many\n", r"hosts:2: cpus=many: expected a number of CPU slots"),
    ("hosts", "gpu0 port=ssh\n", r"hosts:1: port=ssh: expected a port number"),
    ("hosts", "# lab\ngpu0 python=\"/opt/my venv/bin/python\n", r"hosts:2: No closing quotation"),
    ("hosts", "gpu0\ngpu1 cpus=0\n", r"hosts:2: Host gpu1: cpus must be > 0"),
    ("hosts", "gpu0\n\ngpu1 port=99999\n", r"hosts:3: Host gpu1: port must be in 1\.\.65535"),
    ("hosts", "gpu0 env.2X=1\n", r"hosts:1: Host gpu0: env needs NAME=string entries, got bad keys \['2X'\]"),
    ("hosts", "gpu0 cpus=2\n# gpu1\ngpu0 cpus=4\n", r"hosts:3: host gpu0 is already named at .*hosts:1; names must be "
                                                     r"distinct \(give one a name=\)"),
    ("hosts", "# nothing yet\n\n", r"hosts: names no host"),
    ("hosts.toml", '[[hosts]]\nhost = "gpu0"\n[[hosts]]\nhost = "gpu1"\ncpus = "8"\n',
     r"hosts.toml: \[\[hosts\]\] table 2: Host gpu1: cpus must be a number, got cpus='8'"),
    ("hosts.toml", '[[hosts]]\nhost = "gpu0"\nenv = "HF_HOME=/s"\n',
     r"hosts.toml: \[\[hosts\]\] table 1: Host gpu0: env must map names to strings"),
    ("hosts.toml", '[[hosts]\nhost = "gpu0"\n', r"hosts.toml: not valid TOML"),
], ids=["gpus", "cpus", "port", "quote", "cpus-zero", "port-range", "env-name", "duplicate", "empty", "toml-type",
        "toml-env", "toml-syntax"])
def test_a_bad_hosts_file_is_refused_naming_its_line_and_option(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        ssh.SSHExecutor.from_file(path)


@pytest.mark.parametrize("command", [["-m", "asynctune.executors.ssh", "check"], ["-m", "asynctune.cli", "hosts", "check"]],
                         ids=["module", "cli"])
def test_hosts_check_says_what_is_wrong_in_a_hosts_file_without_a_traceback(tmp_path, command):
    for text, message in [("gpu0\ngpu1 gpus=x\n", "hosts:2: gpus=x: expected a count"),
                          ('[[hosts]]\nhost = "gpu0"\ncpus = "x"\n', "table 1: Host gpu0: cpus must be a number")]:
        path = tmp_path / ("hosts.toml" if text.startswith("[") else "hosts")
        path.write_text(text)
        done = subprocess.run([sys.executable, *command, "--hosts-file", str(path)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "PYTHONPATH": ASYNCTUNE_ROOT})
        assert done.returncode == 2 and message in done.stderr
        assert "Traceback" not in done.stderr


# hosts check -------------------------------------------------------------------------------------


def other_pythons() -> dict[str, str]:
    """Interpreters of other Python versions on this machine, "major.minor" -> path."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python"))) + sorted(
        glob.glob("/usr/bin/python[23].*[0-9]")) + [p for p in (shutil.which(f"python{v}") for v in
                                                               ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.12")) if p]
    mine = "%d.%d" % sys.version_info[:2]
    found: dict[str, str] = {}
    for path in candidates:
        try:
            out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                                 text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out and out != mine:
            found.setdefault(out, path)
    return found


@pytest.fixture(scope="module")
def old_and_other_python() -> list[tuple[str, str]]:
    found = other_pythons()
    if not found:
        pytest.skip("no Python of another version on this machine")
    versions = sorted(found, key=lambda v: tuple(map(int, v.split("."))))
    return [(v, found[v]) for v in {versions[0]: 0, versions[-1]: 0}]  # the oldest, and the newest


def test_a_host_whose_python_is_too_old_or_another_version_is_named_as_such(lab, tmp_path, old_and_other_python):
    for version, python in old_and_other_python:
        host = {**host_specs(lab, str(tmp_path / "remote"))[0], "python": python}
        row, = ssh.check_hosts([host], ssh_config=lab.ssh_config, connect_timeout_s=10)
        assert row["reachable"] and row["python"].startswith(version + ".")
        mine = "%d.%d" % sys.version_info[:2]
        assert re.search(rf"host host0: runs Python {re.escape(version)}\.\d+ \({re.escape(python)}\), the driver "
                         rf"Python {re.escape(sys.version.split()[0])}: .* set the host's python= to a Python "
                         rf"{re.escape(mine)}", row["reason"]), row["reason"]
        with pytest.raises(ExecutorError, match=rf"host host0: runs Python {re.escape(version)}\."):
            asyncio.run(ssh.SSHExecutor([host], ssh_config=lab.ssh_config).start())
