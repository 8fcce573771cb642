"""Real sshd servers on 127.0.0.1 for the SSH executor's tests (and its benchmark).

Each server has its own generated host key, config and port; one generated user key logs in
to all of them. `SSHLab.known_hosts` lists the servers' keys, and `SSHLab.ssh_config` names
each server by an alias (`host0`, `host1`, ...) with its port, user, key and known_hosts, so
the executor is driven exactly as a user's ~/.ssh/config would drive it.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import psutil

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def sshd_missing() -> str | None:
    """Why real sshd servers cannot run here, or None."""
    if not os.path.exists(SSHD):
        return "sshd is not installed (apt-get install openssh-server)"
    if not os.path.exists(SSH_KEYGEN):
        return "ssh-keygen is not installed (apt-get install openssh-client)"
    return None


@dataclass
class SSHServer:
    alias: str
    port: int
    host_key: str
    process: subprocess.Popen | None = None

    def kill(self) -> None:
        """SIGKILL the server and every process under it: its sessions and their workers."""
        if self.process is None:
            return
        try:
            parent = psutil.Process(self.process.pid)
            tree = parent.children(recursive=True) + [parent]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.process.wait()
        psutil.wait_procs(tree, timeout=5)
        self.process = None


@dataclass
class SSHLab:
    root: str
    user: str
    user_key: str
    known_hosts: str
    ssh_config: str
    servers: list[SSHServer] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            if server.process is not None:
                server.process.terminate()
        for server in self.servers:
            if server.process is not None:
                try:
                    server.process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
                server.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: str) -> None:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)


def start_lab(root: str, count: int) -> SSHLab:
    """`count` sshd servers on 127.0.0.1, each its own host key and port; keys under `root`."""
    os.makedirs(root, exist_ok=True)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    user = getpass.getuser()
    user_key = os.path.join(root, "id_user")
    _keygen(user_key)
    authorized = os.path.join(root, "authorized_keys")
    shutil.copy(user_key + ".pub", authorized)
    os.chmod(authorized, 0o600)
    lab = SSHLab(root, user, user_key, os.path.join(root, "known_hosts"), os.path.join(root, "ssh_config"))
    for index in range(count):
        server = start_server(lab, f"host{index}")
        lab.servers.append(server)
    return lab


def start_server(lab: SSHLab, alias: str, port: int | None = None, *, sftp: bool = True) -> SSHServer:
    """One more sshd (or the same one again, on its old port and key) for the lab; sftp=False
    leaves out its SFTP subsystem, as some hardened hosts do."""
    existing = next((s for s in lab.servers if s.alias == alias), None)
    host_key = existing.host_key if existing else os.path.join(lab.root, f"{alias}_host_key")
    if existing is None:
        _keygen(host_key)
    port = port or (existing.port if existing else _free_port())
    config = os.path.join(lab.root, f"{alias}_sshd_config")
    with open(config, "w") as f:
        f.write(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {os.path.join(lab.root, 'authorized_keys')}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPidFile none\nLogLevel ERROR\nMaxSessions 20\n"
            + ("Subsystem sftp internal-sftp\n" if sftp else "") +
            # A login shell that runs `pyenv rehash` (pyenv's .bashrc) waits up to 60 s for its lock,
            # and a session killed mid-rehash (tests kill hosts) leaves that lock behind: every later
            # session would wait. Tell rehash not to wait.
            "SetEnv PYENV_REHASH_TIMEOUT=0\n"
        )
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(lab.root, f"{alias}_sshd.log"), "ab"))
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                with open(os.path.join(lab.root, f"{alias}_sshd.log")) as log:
                    raise RuntimeError(f"sshd did not start: {log.read()[-2000:]}") from None
            time.sleep(0.02)
    if existing is None:
        with open(host_key + ".pub") as f:
            key_type, key = f.read().split()[:2]
        with open(lab.known_hosts, "a") as f:
            f.write(f"[127.0.0.1]:{port} {key_type} {key}\n")
        with open(lab.ssh_config, "a") as f:
            f.write(f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {lab.user}\n"
                    f"  IdentityFile {lab.user_key}\n  UserKnownHostsFile {lab.known_hosts}\n"
                    f"  IdentitiesOnly yes\n")
        server = SSHServer(alias, port, host_key, process)
    else:
        existing.process = process
        server = existing
    return server
