"""Trials on a few machines reachable by SSH, as one pool, from one driver.

Each host runs the same worker as the local executor (`python -m asynctune.worker`), started
over an SSH session channel; the framed protocol runs over that channel's stdin/stdout, so
pickles travel only inside SSH. Nothing listens on any port.

Per host, the executor connects (asyncssh: keys, agent, ~/.ssh/config with ProxyJump, host
keys checked against known_hosts), probes Python, asynctune, CPUs and GPUs, copies the user's
project folder once (SFTP), and keeps worker channels open for reuse. Trial folders live under
the host's workdir; every checkpoint a trial reports is copied back to the driver before the
controller sees it, so the controller only ever sees driver paths, and losing a host loses no
progress that was checkpointed. A host that drops is marked down, its trials get a
`WorkerLostEvent`, and it is reconnected in the background with backoff.

    python -m asynctune.executors.ssh check gpu1 alice@gpu2:2222
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import logging
import os
import platform
import posixpath
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

try:
    import asyncssh
except ImportError as _exc:  # pragma: no cover
    raise ImportError("the SSH executor needs asyncssh: pip install 'asynctune[ssh]'") from _exc

from .._compat import TimeoutErrors, timeout
from ..errors import ExecutorError, HostUnreachable
from ..resources import GPU, HostInventory, Placement
from ..session import CHECKPOINT_META
from ..trial import Decision, Mutate
from .base import (
    DoneEvent, ErrorEvent, EventQueue, Executor, ResultEvent, TrialEvent, TrialRun, WorkerLostEvent,
)
from .hosts import Host, parse_hosts, read_hosts_file
from .local import describe_exit, encode_decision, stderr_tail
from .protocol import PROTOCOL_VERSION, FrameDecoder, TrialRequest, encode

logger = logging.getLogger(__name__)

_STDERR_TAIL_BYTES = 4096
_LOG_FILES = ("stdout.txt", "stderr.txt")
_LOG_CHUNK = 1 << 20
_CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr",
            "aes192-ctr", "aes128-ctr"]
_DEFAULT = object()  # "as ssh would": ~/.ssh/known_hosts, ~/.ssh/config, keys and agent

# Run by the host's python at connect: what the host offers, as one line of JSON.
_PROBE = r"""
import json, os, platform, socket, sys
out = {"python": platform.python_version(), "executable": sys.executable, "hostname": socket.gethostname(),
       "workdir": os.path.abspath(os.path.expanduser(sys.argv[1]))}
out["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
try:
    import asynctune
    out["asynctune"] = getattr(asynctune, "__version__", "unknown")
    from asynctune.gpu import probe_gpus
    out["gpus"] = [dict(vars(g)) for g in probe_gpus()]
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    import psutil
    out["memory_mb"] = psutil.virtual_memory().total / 2**20
except Exception:
    pass
os.makedirs(out["workdir"], exist_ok=True)
print(json.dumps(out))
"""

# Unpacks the project folder's archive next to its final place, then renames it into place.
_UNPACK = r"""
import os, shutil, sys, tarfile
archive, target = sys.argv[1], sys.argv[2]
part = target + ".part-%d" % os.getpid()
with tarfile.open(archive) as tar:
    tar.extractall(part, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
open(os.path.join(part, ".complete"), "w").close()
try:
    os.rename(part, target)
except OSError:  # another driver unpacked the same code first
    shutil.rmtree(part, ignore_errors=True)
os.unlink(archive)
"""


class SSHExecutor(Executor):
    """Runs trials on SSH hosts, placed as one pool of CPUs and GPUs.

    Every host needs the driver's Python (same major.minor) with the same asynctune version
    installed (`pip install asynctune`); the trainable travels pickled, and `working_dir` (your
    project folder) is copied to each host and put on the workers' PYTHONPATH.

    Example:
        >>> executor = SSHExecutor(["gpu1", "alice@gpu2:2222"], working_dir=".")
        >>> asynctune.run(train, config=space, executor=executor, max_failures=3,
        ...               resources_per_trial={"cpu": 2, "gpu": 1})

    Args:
        hosts: Host specs: names or aliases from ~/.ssh/config, `user@host:port`, dicts of
            `Host` arguments, or `Host` objects (see `SSHExecutor.from_file` for a hosts file).
        known_hosts: Where host keys are checked: by default as ssh does (~/.ssh/known_hosts
            and UserKnownHostsFile of ~/.ssh/config); a path or list of paths; None turns the
            check off, which is UNSAFE (a machine in the middle could run your trials and read
            everything they send).
        client_keys: Private key files to log in with (default: as ssh does, the agent and
            ~/.ssh/id_* and IdentityFile of ~/.ssh/config).
        ssh_config: ssh_config file(s) to read instead of ~/.ssh/config.
        working_dir: Your project folder, copied once to each host (what .gitignore excludes
            is left out) and put first on the workers' PYTHONPATH; the workers run in it.
        reuse_workers: Keep workers between trials (default True).
        connect_timeout_s: Give up connecting to a host after this long.
        keepalive_interval_s: Ping each host this often (an SFTP round trip); a host that does
            not answer within 3 intervals is down, as is one whose connection drops. 0: no pings.
        reconnect_backoff_s: (first, longest) wait between reconnection attempts to a down host.
        skip_unreachable: Start without the hosts that cannot be reached at start (with a
            warning) instead of failing.
        keep_remote_files: Keep each host's copy of the experiment's trial folders after the
            experiment (by default they are removed: the driver has every checkpoint and log).
        kill_grace_s: Time between SIGTERM and SIGKILL when a trial's process group is ended.
        sessions_per_connection: Channels per SSH connection before another connection is
            opened (sshd's MaxSessions is 10 by default).
    """

    def __init__(self, hosts: Iterable[Host | str | Mapping[str, Any]], *, known_hosts: Any = _DEFAULT,
                 client_keys: Sequence[str] | None = None, ssh_config: str | Sequence[str] | None = None,
                 working_dir: str | os.PathLike[str] | None = None, reuse_workers: bool = True,
                 connect_timeout_s: float = 15.0, keepalive_interval_s: float = 10.0,
                 reconnect_backoff_s: tuple[float, float] = (1.0, 60.0), skip_unreachable: bool = False,
                 keep_remote_files: bool = False, kill_grace_s: float = 3.0, sessions_per_connection: int = 8) -> None:
        parsed = parse_hosts(hosts)
        if not connect_timeout_s > 0:
            raise ValueError(f"SSHExecutor: connect_timeout_s must be > 0, got {connect_timeout_s=}")
        if not keepalive_interval_s >= 0:
            raise ValueError(f"SSHExecutor: keepalive_interval_s must be >= 0, got {keepalive_interval_s=}")
        if len(reconnect_backoff_s) != 2 or not 0 < reconnect_backoff_s[0] <= reconnect_backoff_s[1]:
            raise ValueError(f"SSHExecutor: reconnect_backoff_s must be (first, longest) with 0 < first <= longest, "
                             f"got {reconnect_backoff_s=}")
        if kill_grace_s < 0:
            raise ValueError(f"SSHExecutor: kill_grace_s must be >= 0, got {kill_grace_s=}")
        if not 2 <= sessions_per_connection <= 64:
            raise ValueError(f"SSHExecutor: sessions_per_connection must be in 2..64, got {sessions_per_connection=}")
        if working_dir is not None and not os.path.isdir(working_dir):
            raise ValueError(f"SSHExecutor: working_dir must be an existing folder, got {working_dir=}")
        if known_hosts is None:
            logger.warning("SSHExecutor: known_hosts=None: host keys are NOT checked (unsafe)")
        self.hosts = parsed
        self.known_hosts = known_hosts
        self.client_keys = list(client_keys) if client_keys is not None else None
        self.ssh_config = [ssh_config] if isinstance(ssh_config, (str, os.PathLike)) else ssh_config
        self.working_dir = os.path.abspath(working_dir) if working_dir is not None else None
        self.reuse_workers = reuse_workers
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_interval_s = keepalive_interval_s
        self.reconnect_backoff_s = (float(reconnect_backoff_s[0]), float(reconnect_backoff_s[1]))
        self.skip_unreachable = skip_unreachable
        self.keep_remote_files = keep_remote_files
        self.kill_grace_s = kill_grace_s
        self.sessions_per_connection = sessions_per_connection
        self._remotes: dict[str, _RemoteHost] = {}
        self._code: tuple[bytes, str] | None = None  # the project folder's archive and digest
        self._watchers: list[Callable[[], None]] = []
        self._closed = False

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> SSHExecutor:
        """An executor for the hosts of a hosts file (see asynctune.executors.hosts)."""
        return cls(read_hosts_file(path), **options)

    # Executor ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:  # used again for another experiment: connect afresh
            self._remotes, self._closed = {}, False
        if self._remotes:
            return
        if self.working_dir is not None:
            self._code = await asyncio.to_thread(pack_project, self.working_dir)
        remotes = [_RemoteHost(self, host) for host in self.hosts]
        try:
            outcomes = await asyncio.gather(*(r.connect() for r in remotes), return_exceptions=True)
        except BaseException:  # cancelled: hosts that did connect must not stay connected
            await asyncio.gather(*(r.close() for r in remotes), return_exceptions=True)
            raise
        failures = [(r, e) for r, e in zip(remotes, outcomes) if isinstance(e, BaseException)]
        for remote, outcome in zip(remotes, outcomes):
            if not isinstance(outcome, BaseException):
                self._remotes[remote.name] = remote
        fatal = [e for _, e in failures if not isinstance(e, HostUnreachable) or not self.skip_unreachable]
        if fatal or not self._remotes:
            await asyncio.gather(*(r.close() for r in self._remotes.values()), return_exceptions=True)
            self._remotes.clear()
            errors = [e for _, e in failures]
            if len(errors) == 1:
                raise errors[0]
            raise ExecutorError("SSHExecutor could not start:\n" + "\n".join(f"  {e}" for e in errors))
        for remote, error in failures:
            logger.warning("SSHExecutor: leaving out %s: %s", remote.name, error)

    def inventories(self) -> list[HostInventory]:
        if not self._remotes:
            raise ExecutorError("SSHExecutor.start() was not called")
        return [r.inventory for r in self._remotes.values() if r.inventory is not None]

    def host_available(self, host: str) -> bool:
        remote = self._remotes.get(host)
        return remote is not None and remote.up

    def watch_hosts(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    async def launch(self, request: TrialRequest, placement: Placement) -> TrialRun:
        if self._closed:
            raise ExecutorError("SSHExecutor is closed")
        remote = self._remotes.get(placement.host)
        if remote is None:
            raise ExecutorError(f"SSHExecutor has no host {placement.host!r}; hosts: {sorted(self._remotes)}")
        if not remote.up:
            raise HostUnreachable(remote.name, f"it is down ({remote.down_reason}); reconnecting in the background")
        return await remote.launch(request, placement)

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(r.close() for r in self._remotes.values()), return_exceptions=True)

    def _notify(self) -> None:
        for callback in self._watchers:
            callback()

    # For tests and `hosts check` ----------------------------------------------------------------

    @property
    def remote_info(self) -> dict[str, dict[str, Any]]:
        """What each host's probe reported (python, asynctune, cpus, gpus, workdir...)."""
        return {name: dict(r.info) for name, r in self._remotes.items()}


class _Client(asyncssh.SSHClient):
    """asyncssh client callbacks for one connection: tells its host when it drops."""

    def __init__(self, remote: _RemoteHost) -> None:
        self.remote = remote
        self.connection: Any = None

    def connection_made(self, connection: Any) -> None:
        self.connection = connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.remote._connection_lost(self.connection, exc)


class _RemoteHost:
    """One host: its connections, inventory, workers, and its copy of the experiment's files."""

    def __init__(self, executor: SSHExecutor, host: Host) -> None:
        self.executor = executor
        self.spec = host
        self.name = host.label
        self.up = False
        self.down_reason = "not connected yet"
        self.info: dict[str, Any] = {}
        self.inventory: HostInventory | None = None
        self.connections: dict[Any, int] = {}  # connection -> open worker channels
        self.sftp: Any = None
        self.code_dir: str | None = None
        self.workers: set[_Worker] = set()
        self.idle: dict[tuple, deque[_Worker]] = {}
        self.experiments: dict[str, str] = {}  # driver experiment dir -> remote one
        self.log_offsets: dict[tuple[str, str], int] = {}
        self._reconnect: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._trash: deque[str] = deque()  # superseded checkpoints to remove from the host
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # Connecting ----------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, probe, check versions and copy the code; raise on any problem."""
        connection = await self._open_connection()
        try:
            self.sftp = await connection.start_sftp_client()
            self.connections[connection] = 1
            info = await self._probe(connection)
            problem = compatibility_problem(self.name, info)
            if problem:
                raise ExecutorError(problem)
            self.info = info
            if self.inventory is None:
                self.inventory = self._make_inventory(info)
            if self.executor._code is not None:
                await self._install_code(connection, *self.executor._code)
        except BaseException:
            self.connections.pop(connection, None)
            connection.close()
            raise
        self.up, self.down_reason = True, ""
        if self.executor.keepalive_interval_s > 0:
            self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeat_loop(),
                                                                     name=f"asynctune-heartbeat-{self.name}")

    async def _heartbeat_loop(self) -> None:
        """An SFTP round trip every interval: a host that stops answering is down, even when no
        packet tells its connection so (a cable pulled, a machine frozen)."""
        interval = self.executor.keepalive_interval_s
        sftp = self.sftp
        while self.up and sftp is self.sftp:
            await asyncio.sleep(interval)
            try:
                async with timeout(3 * interval):
                    await sftp.stat(".")
            except TimeoutErrors:
                self._mark_down(f"no answer to a keepalive within {3 * interval:g} s")
            except Exception as exc:
                self._mark_down(f"keepalive failed: {exc}")

    async def _open_connection(self) -> Any:
        ex = self.executor
        # AES-GCM first (AES-NI makes it cheapest per packet), then asyncssh's other defaults;
        # liveness is our own heartbeat (asyncssh's keepalive re-arms a timer per packet).
        options: dict[str, Any] = {"connect_timeout": ex.connect_timeout_s, "encryption_algs": _CIPHERS}
        if ex.known_hosts is not _DEFAULT:
            options["known_hosts"] = ex.known_hosts
        if ex.client_keys is not None:
            options["client_keys"] = ex.client_keys
        if ex.ssh_config is not None:
            options["config"] = ex.ssh_config
        if self.spec.user:
            options["username"] = self.spec.user
        if self.spec.port:
            options["port"] = self.spec.port
        client = _Client(self)
        try:
            async with timeout(ex.connect_timeout_s + 5):
                connection, _ = await asyncssh.create_connection(lambda: client, self.spec.address, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            where = "known_hosts" if ex.known_hosts is _DEFAULT else f"known_hosts={ex.known_hosts!r}"
            port = self.spec.port or 22
            raise HostUnreachable(self.name, (
                f"its host key is not trusted ({exc.reason}): it is missing from {where} or has changed. "
                f"Check the key's fingerprint with the host's admin, then add it (log in once with "
                f"`ssh -p {port} {self.spec.address}`, or `ssh-keyscan -p {port} {self.spec.address} "
                f">> ~/.ssh/known_hosts`). known_hosts=None would skip the check, which is unsafe.")) from None
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(self.name, f"authentication failed ({exc.reason}): no key was accepted; "
                                             f"check `ssh {self.name}` works without a password") from None
        except asyncssh.Error as exc:
            raise HostUnreachable(self.name, f"{type(exc).__name__}: {exc.reason}") from None
        except TimeoutErrors:
            raise HostUnreachable(self.name, f"no answer within {ex.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise HostUnreachable(self.name, f"cannot connect: {exc.strerror or exc}") from None
        client.connection = connection
        return connection

    async def _probe(self, connection: Any) -> dict[str, Any]:
        command = self.command([self.spec.python, "-c", _PROBE, self.spec.workdir], self.env(), None)
        try:
            async with timeout(60):
                result = await connection.run(command, encoding="utf-8", errors="replace")
        except TimeoutErrors:
            raise ExecutorError(f"host {self.name}: probing it with {self.spec.python} took over 60 s") from None
        if result.exit_status != 0:
            hint = (f" (is {self.spec.python!r} the host's Python? set python= for this host)"
                    if result.exit_status == 127 else "")
            raise ExecutorError(f"host {self.name}: probing it with {self.spec.python} failed with exit status "
                                f"{result.exit_status}{hint}: {str(result.stderr).strip()[-800:]}")
        try:
            return json.loads(str(result.stdout).strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ExecutorError(f"host {self.name}: unreadable probe output: {str(result.stdout)[-300:]!r}") from None

    def _make_inventory(self, info: dict[str, Any]) -> HostInventory:
        fields = {f.name for f in dataclasses.fields(GPU)}
        gpus = [GPU(**{k: v for k, v in g.items() if k in fields}) for g in info.get("gpus", [])]
        limit = self.spec.gpus
        if isinstance(limit, int):
            gpus = gpus[:limit]
        elif isinstance(limit, tuple):
            missing = sorted(set(limit) - {g.index for g in gpus})
            if missing:
                raise ExecutorError(f"host {self.name}: gpus={list(limit)} names GPUs {missing} it does not have "
                                    f"(it has {[g.index for g in gpus]})")
            gpus = [g for g in gpus if g.index in limit]
        cpus = float(self.spec.cpus if self.spec.cpus is not None else info.get("cpus") or 1)
        return HostInventory(name=self.name, cpus=cpus, gpus=gpus, memory_mb=float(info.get("memory_mb", 0.0)))

    async def _install_code(self, connection: Any, archive: bytes, digest: str) -> None:
        code_root = posixpath.join(self.info["workdir"], "code")
        target = posixpath.join(code_root, digest)
        if not await self.sftp.exists(posixpath.join(target, ".complete")):
            await self.sftp.makedirs(code_root, exist_ok=True)
            upload = posixpath.join(code_root, f".{digest}-{secrets.token_hex(4)}.tar.gz")
            async with self.sftp.open(upload, "wb") as f:
                await f.write(archive)
            result = await connection.run(self.command([self.spec.python, "-c", _UNPACK, upload, target], {}, None))
            if result.exit_status != 0:
                raise ExecutorError(f"host {self.name}: unpacking the working_dir copy failed: {result.stderr}")
        self.code_dir = target

    # Commands and environment --------------------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(self.spec.env)
        env.update(extra or {})
        if self.code_dir is not None:
            env["PYTHONPATH"] = ":".join(p for p in (self.code_dir, env.get("PYTHONPATH", "")) if p)
        return env

    @staticmethod
    def command(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> str:
        words = ["exec", "env", *(f"{k}={v}" for k, v in env.items()), *argv]
        # sshd hangs up on the session when the connection drops: the worker ignores SIGHUP,
        # sees its input close, and ends its whole process group (see executors/worker.py).
        line = "trap '' HUP; " + " ".join(shlex.quote(w) for w in words)
        return f"cd {shlex.quote(cwd)} && {line}" if cwd else line

    # Losing and regaining the host ---------------------------------------------------------------

    def _connection_lost(self, connection: Any, exc: Exception | None) -> None:
        if connection not in self.connections or self._closing:
            self.connections.pop(connection, None)
            return
        self._mark_down(f"connection lost: {exc}" if exc else "connection closed by the host")

    def _mark_down(self, reason: str) -> None:
        if not self.up:
            return
        self.up, self.down_reason = False, reason
        logger.warning("SSHExecutor: host %s is down (%s); its trials are lost, reconnecting", self.name, reason)
        connections, self.connections = list(self.connections), {}
        for connection in connections:
            connection.close()  # every worker channel ends: their runs get WorkerLostEvent
        for worker in list(self.workers):
            worker.lose(HostUnreachable(self.name, reason))
        self.idle.clear()
        self.sftp = None
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self._heartbeat = None
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._trash.clear()
        if not self.executor._closed and self._reconnect is None:
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop(),
                                                                     name=f"asynctune-reconnect-{self.name}")
        self.executor._notify()

    async def _reconnect_loop(self) -> None:
        delay, longest = self.executor.reconnect_backoff_s
        try:
            while not self.executor._closed:
                await asyncio.sleep(delay)
                try:
                    await self.connect()
                except Exception as exc:
                    self.down_reason = str(exc)
                    logger.info("SSHExecutor: %s still down: %s", self.name, exc)
                    delay = min(delay * 2, longest)
                    continue
                logger.warning("SSHExecutor: host %s is back", self.name)
                self.executor._notify()
                return
        finally:
            self._reconnect = None

    # Workers -------------------------------------------------------------------------------------

    async def launch(self, request: TrialRequest, placement: Placement) -> _SSHTrialRun:
        env = dict(placement.env())
        if "OMP_NUM_THREADS" not in self.spec.env:
            env["OMP_NUM_THREADS"] = str(max(1, int(placement.cpu)))
        key = tuple(sorted(env.items()))
        remote_request = await self._map_request(request)
        idle = self.idle.get(key)  # forget() takes dead workers out, so these are alive
        worker = idle.popleft() if idle else await self._spawn(env, key)
        if request.trainable_key in worker.trainables:
            remote_request = replace(remote_request, trainable_blob=None)
        else:
            worker.trainables.add(request.trainable_key)
        run = _SSHTrialRun(worker, request, remote_request)
        worker.run = run
        worker.send(encode(("run", remote_request)))
        return run

    async def _spawn(self, env_delta: dict[str, str], key: tuple) -> _Worker:
        connection = await self._channel_connection()
        env = self.env({**env_delta, "PYTHONUNBUFFERED": "1"})
        cwd = self.code_dir or self.info["workdir"]
        command = self.command([self.spec.python, "-m", "asynctune.worker"], env, cwd)
        if connection not in self.connections:
            raise HostUnreachable(self.name, self.down_reason)
        self.connections[connection] += 1
        try:
            _, worker = await connection.create_session(lambda: _Worker(self, connection, key), command,
                                                        encoding=None)
        except BaseException:
            if connection in self.connections:
                self.connections[connection] -= 1
            raise
        self.workers.add(worker)
        try:
            async with timeout(60):
                await worker.ready
        except BaseException as exc:
            await self.kill_workers([worker])
            if isinstance(exc, TimeoutErrors):
                raise ExecutorError(f"host {self.name}: the worker did not start within 60 s") from None
            raise
        return worker

    async def _channel_connection(self) -> Any:
        limit = self.executor.sessions_per_connection
        for connection, used in self.connections.items():
            if used < limit:
                return connection
        connection = await self._open_connection()
        self.connections[connection] = 0
        return connection

    def reclaim(self, worker: _Worker) -> None:
        if self.executor.reuse_workers and not self.executor._closed and worker.alive and self.up:
            self.idle.setdefault(worker.key, deque()).append(worker)
            limit = max(2, int(self.inventory.cpus) if self.inventory else 2)
            idle = [w for queue in self.idle.values() for w in queue]
            for extra in idle[: max(0, len(idle) - limit)]:
                self.idle[extra.key].remove(extra)
                extra.exit()
        else:
            worker.exit()

    def forget(self, worker: _Worker) -> None:
        self.workers.discard(worker)
        queue = self.idle.get(worker.key)
        if queue and worker in queue:
            queue.remove(worker)
        if worker.connection in self.connections:
            self.connections[worker.connection] = max(0, self.connections[worker.connection] - 1)

    async def kill_workers(self, workers: Sequence[_Worker]) -> None:
        """SIGTERM each worker's process group, wait the grace period, then SIGKILL and close."""
        alive = [w for w in workers if w.alive]
        if not alive:
            return
        await self._signal(alive, "TERM")
        await _wait_gone(alive, self.executor.kill_grace_s)
        alive = [w for w in alive if w.alive]
        if alive:
            await self._signal(alive, "KILL")
            for worker in alive:
                worker.close_channel()  # the worker's watchdog SIGKILLs its group as the pipe closes
            await _wait_gone(alive, 5.0)

    async def _signal(self, workers: Sequence[_Worker], name: str) -> None:
        pids = [w.pid for w in workers if isinstance(w.pid, int) and w.pid > 1]
        if not pids or not self.connections or not self.up:
            return
        connection = min(self.connections, key=self.connections.__getitem__)  # the one with most room
        targets = " ".join(f"-{pid} {pid}" for pid in pids)  # each worker leads its own process group
        try:
            async with timeout(10):
                await connection.run(f"kill -{name} -- {targets} 2>/dev/null; true")
        except Exception as exc:
            logger.debug("kill -%s on %s failed: %s", name, self.name, exc)

    # Files ---------------------------------------------------------------------------------------

    def remote_experiment_dir(self, experiment_dir: str) -> str:
        path = self.experiments.get(experiment_dir)
        if path is None:
            digest = hashlib.sha1(f"{socket.gethostname()}:{experiment_dir}".encode()).hexdigest()[:10]
            name = os.path.basename(experiment_dir.rstrip(os.sep)) or "experiment"
            path = self.experiments[experiment_dir] = posixpath.join(self.info["workdir"], "experiments",
                                                                     f"{name}-{digest}")
        return path

    async def _map_request(self, request: TrialRequest) -> TrialRequest:
        """The request as the host sees it: its trial folder there, its checkpoint uploaded."""
        experiment_dir = request.experiment_dir or os.path.dirname(request.trial_dir)
        remote_experiment = self.remote_experiment_dir(experiment_dir)
        remote_trial = posixpath.join(remote_experiment, _relative(request.trial_dir, experiment_dir))
        restore = request.restore_checkpoint
        if restore is not None:
            restore = await self.upload_checkpoint(restore, request.trial_dir, remote_trial, experiment_dir)
        return replace(request, trial_dir=remote_trial, experiment_dir=remote_experiment, restore_checkpoint=restore)

    async def upload_checkpoint(self, local: str, trial_dir: str, remote_trial: str, experiment_dir: str) -> str:
        """The host's copy of a driver checkpoint, uploaded unless an identical one is there."""
        if _inside(local, trial_dir):
            remote = posixpath.join(remote_trial, _relative(local, trial_dir))
        elif _inside(local, experiment_dir):
            remote = posixpath.join(self.remote_experiment_dir(experiment_dir), _relative(local, experiment_dir))
        else:
            digest = hashlib.sha1(os.path.abspath(local).encode()).hexdigest()[:10]
            remote = posixpath.join(self.remote_experiment_dir(experiment_dir), "uploads", digest,
                                    os.path.basename(local.rstrip(os.sep)))
        if await self._same_checkpoint(local, remote):
            return remote
        part = f"{remote}.part-{secrets.token_hex(4)}"
        await self.sftp.makedirs(posixpath.dirname(remote), exist_ok=True)
        await self.sftp.put(local, part, recurse=True)
        if await self.sftp.exists(remote):
            await self.sftp.rmtree(remote, ignore_errors=True)
        await self.sftp.rename(part, remote)
        return remote

    async def _same_checkpoint(self, local: str, remote: str) -> bool:
        try:
            with open(os.path.join(local, CHECKPOINT_META), "rb") as f:
                mine = f.read()
            async with self.sftp.open(posixpath.join(remote, CHECKPOINT_META), "rb") as f:
                theirs = await f.read()
        except Exception:
            return False
        return bool(mine) and mine == theirs

    def discard(self, path: str) -> None:
        """Remove a remote folder in the background, off the path of results."""
        self._trash.append(path)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name=f"asynctune-sweep-{self.name}")

    async def _sweep(self) -> None:
        while self._trash and self.up and self.sftp is not None:
            path = self._trash.popleft()
            try:
                await self.sftp.rmtree(path, ignore_errors=True)
            except Exception as exc:
                logger.debug("could not remove %s on %s: %s", path, self.name, exc)

    async def download_dir(self, remote: str, local: str) -> None:
        """Copy a remote folder to `local`, which appears whole or not at all."""
        parent = os.path.dirname(local)
        os.makedirs(parent, exist_ok=True)
        part = os.path.join(parent, f".{os.path.basename(local)}.part-{secrets.token_hex(4)}")
        try:
            await self.sftp.get(remote, part, recurse=True)
            if os.path.isdir(local):
                shutil.rmtree(local, ignore_errors=True)
            os.replace(part, local)
        finally:
            if os.path.exists(part):
                shutil.rmtree(part, ignore_errors=True)

    async def fetch_logs(self, remote_trial: str, trial_dir: str, trial_id: str) -> None:
        """Append what the trial printed on this host since the last fetch to the driver's files."""
        for name in _LOG_FILES:
            key = (trial_id, name)
            offset = self.log_offsets.get(key, 0)
            try:
                async with self.sftp.open(posixpath.join(remote_trial, name), "rb") as f:
                    while data := await f.read(_LOG_CHUNK, offset):
                        os.makedirs(trial_dir, exist_ok=True)
                        with open(os.path.join(trial_dir, name), "ab") as out:
                            out.write(data)
                        offset += len(data)
                        self.log_offsets[key] = offset
            except Exception as exc:  # no such file: the trial printed nothing
                logger.debug("no %s for %s on %s: %s", name, trial_id, self.name, exc)

    # Closing -------------------------------------------------------------------------------------

    async def close(self) -> None:
        tasks = [t for t in (self._reconnect, self._heartbeat) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            async with timeout(30):
                if self._sweeper is not None and self.executor.keep_remote_files:
                    await self._sweeper  # what is kept is what the experiment left: latest checkpoints
                busy = [w for w in self.workers if w.run is not None]
                for worker in self.workers:
                    if worker.run is None:
                        worker.exit()
                await asyncio.gather(self.kill_workers(busy), _wait_gone(list(self.workers), 2.0))
                await self.kill_workers(list(self.workers))
                if self.up and self.sftp is not None and not self.executor.keep_remote_files:
                    for path in self.experiments.values():
                        await self.sftp.rmtree(path, ignore_errors=True)
        except TimeoutErrors:
            logger.warning("SSHExecutor: closing %s took over 30 s", self.name)
        except Exception as exc:
            logger.warning("SSHExecutor: while closing %s: %s", self.name, exc)
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._closing = True
            self.up = False
            connections, self.connections = list(self.connections), {}
            for connection in connections:
                connection.close()
            for connection in connections:
                try:
                    async with timeout(5):
                        await connection.wait_closed()
                except TimeoutErrors:
                    pass


class _Worker(asyncssh.SSHClientSession):
    """One worker process on a host, behind one SSH session channel."""

    def __init__(self, remote: _RemoteHost, connection: Any, key: tuple) -> None:
        loop = asyncio.get_running_loop()
        self.remote = remote
        self.connection = connection
        self.key = key
        self.decoder = FrameDecoder()
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.channel: Any = None
        self.stderr = bytearray()
        self.run: _SSHTrialRun | None = None
        self.trainables: set[str] = set()
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.alive = True
        self._lost_reason: HostUnreachable | None = None

    # asyncssh.SSHClientSession ------------------------------------------------------------------

    def connection_made(self, channel: Any) -> None:
        self.channel = channel

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if datatype is not None:  # EXTENDED_DATA_STDERR: the worker's own stderr
            self.stderr += data
            del self.stderr[:-_STDERR_TAIL_BYTES]
            return
        for message in self.decoder.feed(data):
            self._on_message(message)

    def exit_status_received(self, status: int) -> None:
        self.exit_code = status

    def exit_signal_received(self, name: str, core_dumped: bool, message: str, lang: str) -> None:
        number = getattr(signal.Signals, f"SIG{name}", None)
        self.exit_code = -int(number) if number is not None else -1

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._lost_reason is None:
            self._lost_reason = HostUnreachable(self.remote.name, f"connection lost: {exc}")
        self._end()
        if exc is not None:
            self.remote._connection_lost(self.connection, exc)

    # State -----------------------------------------------------------------------------------------

    def lose(self, reason: HostUnreachable) -> None:
        """The host went down: this worker is gone with it."""
        if self._lost_reason is None:
            self._lost_reason = reason
        self._end()

    def _end(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self.remote.forget(self)
        stderr = self.stderr.decode(errors="replace")
        if not self.ready.done():
            why = str(self._lost_reason) if self._lost_reason else describe_exit(self.exit_code)
            self.ready.set_exception(ExecutorError(f"worker on {self.remote.name} failed to start: {why}\n{stderr}"))
        run, self.run = self.run, None
        if run is not None:
            run.worker_lost(self._lost_reason, self.exit_code)
        if not self.gone.done():
            self.gone.set_result(None)

    def _on_message(self, message: tuple) -> None:
        kind = message[0]
        run = self.run
        if kind == "result" and run is not None:
            run.on_result(message[1], message[2])
        elif kind in ("done", "error") and run is not None:
            if kind == "error":  # it may have failed to unpickle the trainable: send it again next time
                self.trainables.discard(run.request.trainable_key)
            self.run = None
            self.remote.reclaim(self)  # idle again before the controller even sees the event
            run.on_end(kind, message[1], message[2])
        elif kind == "ready" and not self.ready.done():
            info = message[1]
            if info.get("protocol") != PROTOCOL_VERSION:
                self.ready.set_exception(ExecutorError(
                    f"worker on {self.remote.name} speaks protocol {info.get('protocol')}, "
                    f"the driver {PROTOCOL_VERSION}: install the same asynctune version"))
            else:
                self.pid = info.get("pid")
                self.ready.set_result(info)

    def send(self, data: bytes) -> None:
        channel = self.channel
        if self.alive and channel is not None and not channel.is_closing():
            channel.write(data)

    def exit(self) -> None:
        self.send(encode(("exit",)))

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()


class _SSHTrialRun(TrialRun):
    """A trial on a host. Its events pass through one ordered pipeline: a result that carries a
    checkpoint waits for its copy to the driver, and everything after it waits in turn."""

    def __init__(self, worker: _Worker, request: TrialRequest, remote_request: TrialRequest) -> None:
        self.worker = worker
        self.remote = worker.remote
        self.request = request
        self.remote_request = remote_request
        self.trial_id = request.trial_id
        self.pid = worker.pid
        self.host = worker.remote.name
        self.queue = EventQueue()
        self._tail: asyncio.Task[None] | None = None
        self._copied: dict[str, str] = {}  # remote checkpoint -> driver copy
        self._latest = remote_request.restore_checkpoint  # the host's newest checkpoint of this trial
        self._decision: asyncio.Task[None] | None = None

    async def events(self) -> AsyncIterator[TrialEvent]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                if not isinstance(event, ResultEvent):
                    return
        finally:
            for task in (self._tail, self._decision):
                if task is not None and not task.done():
                    task.cancel()

    def decide(self, decision: Decision | Mutate) -> None:
        if isinstance(decision, Mutate) and decision.checkpoint is not None:
            self._decision = asyncio.get_running_loop().create_task(self._send_mutation(decision))
        else:
            self.worker.send(encode_decision(decision))

    async def kill(self) -> None:
        await self.remote.kill_workers([self.worker])

    # From the worker -----------------------------------------------------------------------------

    def on_result(self, result: dict[str, Any], checkpoint: str | None) -> None:
        if checkpoint is None and self._tail is None:  # the hot path: straight to the controller
            self.queue.put(ResultEvent(result, None))
            return

        async def copy() -> TrialEvent:
            return ResultEvent(result, await self._copy_checkpoint(checkpoint))

        self._then(copy)

    def on_end(self, kind: str, first: str, second: str | None) -> None:
        async def finish() -> TrialEvent:
            checkpoint = await self._copy_checkpoint(second) if kind == "done" else None
            await self._fetch_logs()
            return DoneEvent(first, checkpoint) if kind == "done" else ErrorEvent(first, second or "")

        self._then(finish)

    def worker_lost(self, reason: HostUnreachable | None, exit_code: int | None) -> None:
        worker_stderr = bytes(self.worker.stderr)

        async def lost() -> TrialEvent:
            if reason is None:  # the worker died, the host is fine: its stderr tells why
                await self._fetch_logs()
                return WorkerLostEvent(describe_exit(exit_code), exit_code,
                                       stderr_tail(self.request.trial_dir, worker_stderr))
            return WorkerLostEvent(str(reason), None, stderr_tail(self.request.trial_dir, worker_stderr))

        self._then(lost)

    # The pipeline ----------------------------------------------------------------------------------

    def _then(self, work: Callable[[], Awaitable[TrialEvent]]) -> None:
        previous = self._tail

        async def step() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            self.queue.put(await work())

        task = asyncio.get_running_loop().create_task(step(), name=f"asynctune-ssh-{self.trial_id}")
        self._tail = task
        task.add_done_callback(self._step_done)

    def _step_done(self, task: asyncio.Task[None]) -> None:
        if self._tail is task:
            self._tail = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("SSHExecutor: event pipeline of %s failed", self.trial_id, exc_info=task.exception())
            self.queue.put(WorkerLostEvent(f"asynctune internal error on {self.host}: {task.exception()!r}"))

    async def _copy_checkpoint(self, remote: str | None) -> str | None:
        """The driver's copy of a checkpoint the trial reported (None if it could not be copied)."""
        if remote is None:
            return None
        local = self._copied.get(remote)
        if local is not None:
            return local
        local = os.path.join(self.request.trial_dir, _relative(remote, self.remote_request.trial_dir, posixpath))
        try:
            await self.remote.download_dir(remote, local)
        except Exception as exc:
            logger.warning("SSHExecutor: could not copy checkpoint %s of %s from %s: %s", remote, self.trial_id,
                           self.host, exc)
            return None
        self._copied[remote] = local
        previous, self._latest = self._latest, remote
        if previous is not None and previous != remote and _inside(previous, self.remote_request.trial_dir):
            self.remote.discard(previous)  # the driver has it: the host keeps only the latest
        return local

    async def _fetch_logs(self) -> None:
        if not self.remote.up or self.remote.sftp is None:
            return
        try:
            async with timeout(30):
                await self.remote.fetch_logs(self.remote_request.trial_dir, self.request.trial_dir, self.trial_id)
        except Exception as exc:
            logger.warning("SSHExecutor: could not copy the logs of %s from %s: %s", self.trial_id, self.host, exc)

    async def _send_mutation(self, mutate: Mutate) -> None:
        try:
            checkpoint = await self.remote.upload_checkpoint(
                mutate.checkpoint, self.request.trial_dir, self.remote_request.trial_dir,
                self.request.experiment_dir or os.path.dirname(self.request.trial_dir))
        except Exception as exc:
            logger.warning("SSHExecutor: could not upload %s to %s for %s: %s; stopping it", mutate.checkpoint,
                           self.host, self.trial_id, exc)
            self.worker.send(encode_decision(Decision.STOP))
            return
        self.worker.send(encode_decision(Mutate(mutate.config, checkpoint)))


# Helpers -------------------------------------------------------------------------------------------


async def _wait_gone(workers: Sequence[_Worker], seconds: float) -> None:
    pending = [w.gone for w in workers if not w.gone.done()]
    if pending:
        await asyncio.wait(pending, timeout=seconds)


def _inside(path: str, directory: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(directory).rstrip(os.sep) + os.sep)


def _relative(path: str, directory: str, paths: Any = os.path) -> str:
    """`path` relative to `directory` (in `/` form), or its last part when it lies outside."""
    if paths.abspath(path).startswith(paths.abspath(directory).rstrip("/") + "/"):
        return paths.relpath(path, directory).replace(os.sep, "/")
    return paths.basename(path.rstrip("/"))


def compatibility_problem(name: str, info: Mapping[str, Any]) -> str | None:
    """Why a host's probe makes it unusable by this driver, or None."""
    from .. import __version__

    if "error" in info or "asynctune" not in info:
        return (f"host {name}: asynctune cannot be imported by {info.get('executable', 'its python')} "
                f"({info.get('error', 'not installed')}); install asynctune=={__version__} there, or set the "
                f"host's python=")
    mine = ".".join(platform.python_version_tuple()[:2])
    theirs = ".".join(str(info.get("python", "?")).split(".")[:2])
    if mine != theirs:
        return (f"host {name}: runs Python {info.get('python')} ({info.get('executable')}), the driver Python "
                f"{platform.python_version()}: pickled trainables need the same major.minor; set the host's "
                f"python= to a Python {mine}")
    if info["asynctune"] != __version__:
        return (f"host {name}: has asynctune {info['asynctune']}, the driver {__version__}: install "
                f"asynctune=={__version__} on the host (or point its python= at an environment that has it)")
    return None


def project_files(root: str) -> list[str]:
    """The files of a project folder, relative to it, without what .gitignore excludes."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True, timeout=60).stdout
        names = [n for n in out.decode().split("\0") if n]
        return sorted(n for n in names if os.path.isfile(os.path.join(root, n)))
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in ("__pycache__", "node_modules"))
        for name in names:
            if not name.endswith((".pyc", ".pyo")):
                files.append(os.path.relpath(os.path.join(directory, name), root))
    return sorted(files)


def pack_project(root: str) -> tuple[bytes, str]:
    """A gzipped tar of the project folder and a digest of its contents."""
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=3) as tar:
        for name in project_files(root):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), os.stat(path).st_mode & 0o777, 0
            tar.addfile(info, io.BytesIO(data))
    if buffer.tell() > 200 * 2**20:
        logger.warning("SSHExecutor: working_dir %s packs to %d MB; list big files in .gitignore", root,
                       buffer.tell() // 2**20)
    return buffer.getvalue(), digest.hexdigest()[:20]


# `hosts check` -------------------------------------------------------------------------------------


async def check_hosts_async(hosts: Iterable[Host | str | Mapping[str, Any]], **options: Any) -> list[dict[str, Any]]:
    """Reach each host and say what it offers; see check_hosts."""
    executor = SSHExecutor(hosts, **options)

    async def check(host: Host) -> dict[str, Any]:
        row: dict[str, Any] = {"host": host.label, "reachable": False, "reason": "", "python": None,
                               "asynctune": None, "cpus": None, "gpus": None, "latency_ms": None}
        remote = _RemoteHost(executor, host)
        try:
            connection = await remote._open_connection()
        except ExecutorError as exc:
            row["reason"] = getattr(exc, "reason", str(exc))
            return row
        row["reachable"] = True
        remote.connections[connection] = 0
        try:
            sftp = await connection.start_sftp_client()
            rounds = []
            for _ in range(3):
                begin = time.perf_counter()
                await sftp.stat(".")
                rounds.append(time.perf_counter() - begin)
            row["latency_ms"] = round(min(rounds) * 1000, 2)
            info = await remote._probe(connection)
            row.update(python=info.get("python"), asynctune=info.get("asynctune"), cpus=info.get("cpus"),
                       gpus=[{"index": g.get("index"), "name": g.get("name"),
                              "memory_total_mb": g.get("memory_total_mb")} for g in info.get("gpus", [])])
            row["reason"] = compatibility_problem(host.label, info) or ""
        except Exception as exc:
            row["reason"] = str(exc)
        finally:
            remote._closing = True
            connection.close()
            await connection.wait_closed()
        return row

    return list(await asyncio.gather(*(check(h) for h in executor.hosts)))


def check_hosts(hosts: Iterable[Host | str | Mapping[str, Any]], **options: Any) -> list[dict[str, Any]]:
    """Reach each host and report what it offers, without starting anything there.

    Example:
        >>> for row in check_hosts(["gpu1", "alice@gpu2:2222"]):
        ...     print(row["host"], row["reachable"], row["reason"], row["gpus"])

    Args:
        hosts: Host specs, as for SSHExecutor.
        options: SSHExecutor's connection options (known_hosts, client_keys, ssh_config,
            connect_timeout_s).

    Returns:
        One dict per host: host, reachable (bool), reason (why not reachable or not usable;
        "" when all is well), python, asynctune (versions), cpus, gpus (index, name,
        memory_total_mb each), latency_ms (an SFTP round trip).
    """
    return asyncio.run(check_hosts_async(hosts, **options))


def format_check(rows: Sequence[Mapping[str, Any]]) -> str:
    """`check_hosts` rows as a text table."""
    lines = [f"{'host':<28} {'status':<11} {'python':<8} {'asynctune':<10} {'cpus':>4}  {'gpus':<24} {'rtt ms':>7}"]
    for row in rows:
        status = "ok" if row["reachable"] and not row["reason"] else ("unusable" if row["reachable"] else "unreachable")
        gpus = row["gpus"]
        gpu_text = "-" if gpus is None else (f"{len(gpus)}: " + ", ".join(sorted({str(g['name']) for g in gpus}))
                                            if gpus else "0")
        lines.append(f"{row['host']:<28} {status:<11} {row['python'] or '-':<8} {row['asynctune'] or '-':<10} "
                     f"{row['cpus'] if row['cpus'] is not None else '-':>4}  {gpu_text:<24} "
                     f"{row['latency_ms'] if row['latency_ms'] is not None else '-':>7}")
        if row["reason"]:
            lines.append(f"    {row['reason']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m asynctune.executors.ssh check HOST...`: reachability and inventory of hosts."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m asynctune.executors.ssh")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="reach each host and print what it offers")
    check.add_argument("hosts", nargs="*", help="gpu1, user@gpu2:2222, or ~/.ssh/config aliases")
    check.add_argument("--hosts-file", help="a hosts file (one host per line)")
    check.add_argument("--known-hosts", help="known_hosts file (default: as ssh)")
    check.add_argument("--identity", "-i", action="append", help="private key file (default: as ssh)")
    check.add_argument("--ssh-config", "-F", help="ssh_config file (default: ~/.ssh/config)")
    check.add_argument("--timeout", type=float, default=10.0, help="connect timeout in seconds")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    hosts: list[Any] = list(args.hosts)
    if args.hosts_file:
        hosts += read_hosts_file(args.hosts_file)
    if not hosts:
        parser.error("name at least one host, or --hosts-file")
    options: dict[str, Any] = {"connect_timeout_s": args.timeout}
    if args.known_hosts:
        options["known_hosts"] = args.known_hosts
    if args.identity:
        options["client_keys"] = args.identity
    if args.ssh_config:
        options["ssh_config"] = args.ssh_config
    rows = check_hosts(hosts, **options)
    print(json.dumps(rows, indent=1) if args.json else format_check(rows))
    return 0 if all(r["reachable"] and not r["reason"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
