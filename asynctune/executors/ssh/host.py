"""One SSH host: its connections, its health (heartbeat, loss, reconnection) and its probe.

`_RemoteHost` is what the SSH executor keeps per host. This module holds its connection and
health; it composes its worker pool (`HostWorkers`, workers.py) and its file copies
(`HostFiles`, sync.py), which reach the host only through its public attributes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import os
import platform
import re
import shlex
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncssh

from ...core.compat import TimeoutErrors, timeout
from ...errors import ExecutorError, HostKeyRefused, HostUnreachable
from ...core.resources import GPU, HostInventory
from .hosts import Host
from .copies import CheckpointCopies
from .sync import HostFiles
from .workers import HostWorkers

if TYPE_CHECKING:
    from .executor import SSHExecutor

logger = logging.getLogger(__name__)

_CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr",
            "aes192-ctr", "aes128-ctr"]


class _AsSSH:
    """The known_hosts default, "as ssh would": ~/.ssh/known_hosts and the ssh config's
    UserKnownHostsFile. One instance that pickles as itself: an executor saved in a run spec
    and unpickled by resume() must still mean the default, not an unknown object."""

    def __reduce__(self) -> str:
        return "_DEFAULT"

    def __repr__(self) -> str:
        return "<as ssh>"


_DEFAULT = _AsSSH()

# Run by the host's python at connect: what the host offers, as one line of JSON. Written to run
# on any Python from 2.7 on, so that a host whose python is too old is named as such, not as a
# traceback of this script.
_PROBE = r"""
import json, os, platform, socket, sys
out = {"python": platform.python_version(), "executable": sys.executable, "hostname": socket.gethostname(),
       "workdir": os.path.abspath(os.path.expandvars(os.path.expanduser(sys.argv[1])))}
cpu_count = getattr(os, "cpu_count", None)
out["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpu_count and cpu_count()
try:
    import asynctune
    out["asynctune"] = getattr(asynctune, "__version__", "unknown")
    from asynctune.core.gpu import probe_gpus
    out["gpus"] = [dict(vars(g)) for g in probe_gpus()]
    if not out["gpus"]:
        from asynctune.core.gpu import why_no_gpu
        out["no_gpu"] = why_no_gpu()  # no NVIDIA driver, no nvidia-ml-py, CUDA_VISIBLE_DEVICES...
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    import psutil
    out["memory_mb"] = psutil.virtual_memory().total / 2**20
except Exception:
    pass
try:
    try:
        os.makedirs(out["workdir"], 0o700)
    except OSError:  # there already: made by another host's probe too (one home over NFS), or earlier
        if not os.path.isdir(out["workdir"]):
            raise
    if os.stat(out["workdir"]).st_uid == os.getuid():
        os.chmod(out["workdir"], 0o700)  # the workdir is asynctune's: private, whatever made it before
    # A byte written and removed: a read-only mount, a full disk or a lost permission shows here.
    probe = os.path.join(out["workdir"], ".asynctune-probe-%d" % os.getpid())
    with open(probe, "wb") as f:
        f.write(b"x")
    os.remove(probe)
except OSError as exc:
    out["workdir_error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""


_PROBE_TIMEOUT_S = 1.5  # a fresh probe's TCP connect and SSH banner
_STALL_LIMIT_S = 15.0  # a connection stalled this long is given up though its host answers


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
    """One host: its connections, inventory, workers (HostWorkers), and its copy of the
    experiment's files (HostFiles). Its background tasks belong to the executor's TaskGroup."""

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
        self._reconnect: asyncio.Task[Any] | None = None
        self._heartbeat: asyncio.Task[Any] | None = None
        self._closing = False
        self.peer: tuple[str, int] | None = None  # the sshd's address, for fresh probes (see answers())
        self.workers = HostWorkers(self)  # its worker pool (workers.py)
        self.files = HostFiles(self)  # its copy of the experiment's files (sync.py)
        self.copies = CheckpointCopies(self)  # checkpoints to the driver, in the background (copies.py)

    # Connecting ----------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, probe, check versions and copy the code; raise on any problem."""
        connection = await self._open_connection()
        try:
            self.sftp = await self.start_sftp(connection)
            self.connections[connection] = 1
            info = await self._probe(connection)
            problem = compatibility_problem(self.name, info)
            if problem:
                raise ExecutorError(problem)
            self.info = info
            if self.inventory is None:
                self.inventory = self._make_inventory(info)
            if self.executor._code is not None:
                await self.files.install_code(connection, *self.executor._code)
        except BaseException:
            self.connections.pop(connection, None)
            connection.close()
            raise
        self.up, self.down_reason = True, ""
        if self.executor.keepalive_interval_s > 0:
            self._heartbeat = self.executor._tasks.spawn(self._heartbeat_loop(), f"heartbeat-{self.name}")

    async def start_sftp(self, connection: Any) -> Any:
        """The connection's SFTP client; a host whose sshd offers no SFTP is named, with the fix."""
        try:
            return await connection.start_sftp_client()
        except (asyncssh.ChannelOpenError, asyncssh.SFTPError) as exc:
            raise ExecutorError(
                f"host {self.name}: its sshd refused an SFTP session ({exc.reason}); asynctune copies files over "
                f"SFTP: enable it in the host's sshd_config (`Subsystem sftp internal-sftp`, or the path of "
                f"sftp-server; most systems have it by default) and reload sshd") from None

    async def _heartbeat_loop(self) -> None:
        """An SFTP round trip every interval; one that is not answered in time is checked with a
        fresh probe before the host is declared down, so a host is down within a few seconds
        of a cut (a cable pulled, a machine frozen) and never for a stall already over."""
        interval = self.executor.keepalive_interval_s
        patience = max(_PROBE_TIMEOUT_S, 2 * interval)
        sftp = self.sftp
        stalled_since: float | None = None
        while self.up and sftp is self.sftp:
            await asyncio.sleep(interval)
            try:
                async with timeout(patience):
                    await sftp.stat(".")
                stalled_since = None
                continue
            except TimeoutErrors:
                pass
            except Exception as exc:
                self._mark_down(f"keepalive failed: {exc}")
                return
            if not self.up or sftp is not self.sftp:
                return
            now = asyncio.get_running_loop().time()
            stalled_since = stalled_since or now - patience
            if not await self.answers():
                self._mark_down(f"no answer to a keepalive within {patience:g} s, nor to a fresh connection "
                                f"within {_PROBE_TIMEOUT_S:g} s")
                return
            if now - stalled_since > _STALL_LIMIT_S:
                self._mark_down(f"its connection stalled for {now - stalled_since:.0f} s though the host answers")
                return

    async def answers(self) -> bool:
        """A fresh probe: a new TCP connection to the host's sshd shows its SSH banner in time.
        True when the address is unknown (behind a ProxyJump): then only the keepalive judges."""
        if self.peer is None:
            return True
        writer = None
        try:
            async with timeout(_PROBE_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(*self.peer)
                return (await reader.readline()).startswith(b"SSH-")
        except (OSError, *TimeoutErrors):
            return False
        finally:
            if writer is not None:
                writer.close()

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
                if ex.known_hosts is _DEFAULT:
                    await self._check_host_keys_are_verified(options)
                connection, _ = await asyncssh.create_connection(lambda: client, self.spec.address, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            where = "known_hosts" if ex.known_hosts is _DEFAULT else f"known_hosts={ex.known_hosts!r}"
            inspect = _ssh_command(self.spec, ex.known_hosts, ex.ssh_config, batch=True)
            login = _ssh_command(self.spec, ex.known_hosts, ex.ssh_config)
            known = await self._known_keys(options)
            if known:  # ssh's "REMOTE HOST IDENTIFICATION HAS CHANGED": the alarming case, said as such
                raise HostKeyRefused(self.name, (
                    f"its host key is not trusted ({exc.reason}): it CHANGED: {', '.join(known)} holds another key "
                    f"for it. A reinstalled host, or a machine in the middle: check the new key's fingerprint with "
                    f"the host's admin, then remove the old line ({inspect} names it) and log in once with {login}, "
                    f"which shows the new fingerprint. known_hosts=None would skip the check, which is unsafe."),
                    inspect) from None
            raise HostKeyRefused(self.name, (
                f"its host key is not trusted ({exc.reason}): it is unknown, missing from {where}. "
                f"Check the key's fingerprint with the host's admin, then add it: log in once with {login}, "
                f"which shows the fingerprint and adds the key (or {inspect} names the known_hosts line to fix). "
                f"known_hosts=None would skip the check, which is unsafe."), inspect) from None
        except asyncssh.PermissionDenied as exc:
            login = _ssh_command(self.spec, ex.known_hosts, ex.ssh_config, batch=True, keys=ex.client_keys)
            raise HostUnreachable(self.name, f"authentication failed ({exc.reason}): no key was accepted; "
                                             f"check that {login} works without a password") from None
        except (asyncssh.ConnectionLost, ConnectionResetError, BrokenPipeError):  # TCP connected, then closed
            port = f"port {self.spec.port}" if self.spec.port else "its SSH port"  # (or reset) before any SSH
            raise HostUnreachable(self.name, f"{self.spec.address} closed the connection on {port} before the SSH "
                                             f"handshake ended: is it sshd that listens there? (sshd's MaxStartups "
                                             f"or a firewall also close connections this way)") from None
        except asyncssh.Error as exc:
            raise HostUnreachable(self.name, f"{type(exc).__name__}: {exc.reason}") from None
        except TimeoutErrors:
            raise HostUnreachable(self.name, f"no answer within {ex.connect_timeout_s:g} s") from None
        except socket.gaierror as exc:
            where = ", ".join(map(str, ex.ssh_config or [])) or "~/.ssh/config"
            raise HostUnreachable(self.name, f"cannot connect: no host {self.spec.address!r} is known ({exc.strerror}):"
                                             f" neither DNS nor a Host entry of {where} names it") from None
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED or "Connect call failed" in str(exc):
                port = f"port {self.spec.port}" if self.spec.port else "its SSH port (22 or ~/.ssh/config's Port)"
                raise HostUnreachable(self.name, f"cannot connect: {self.spec.address} refused the connection on "
                                                 f"{port}; no sshd listens there: check the port, and that sshd "
                                                 f"runs on the host") from None
            raise HostUnreachable(self.name, f"cannot connect: {exc.strerror or exc}") from None
        client.connection = connection
        peer = connection.get_extra_info("peername")  # behind a ProxyJump: none, or no usable port
        if isinstance(peer, tuple) and len(peer) >= 2 and peer[0] and peer[1]:
            self.peer = (str(peer[0]), int(peer[1]))
        return connection

    async def _known_keys(self, options: dict[str, Any]) -> list[str]:
        """The known_hosts files that hold a key for this host (under its HostName and port, as
        the connection looked it up): [] when it is unknown there, or that cannot be told."""
        try:
            settings = await asyncssh.SSHClientConnectionOptions.construct(host=self.spec.address,
                                                                           **{"config": (), **options})
            files = settings.known_hosts
            if isinstance(files, (str, os.PathLike)):
                files = [files]
            files = [os.fspath(f) for f in files or []] or [os.path.expanduser("~/.ssh/known_hosts")]
            address = socket.getaddrinfo(settings.host, None)[0][4][0]
            return [path for path in files if os.path.exists(path)
                    and asyncssh.match_known_hosts(path, settings.host, address, settings.port)[0]]
        except Exception:  # an address that does not resolve, an unreadable file: "unknown"
            return []

    async def _check_host_keys_are_verified(self, options: dict[str, Any]) -> None:
        """Refuse a host whose ssh config turns host-key checking off (`UserKnownHostsFile
        none`): asyncssh would then accept any key, and the driver unpickles what the host
        sends. Only known_hosts=None, asked for in asynctune's own arguments, allows that."""
        # config=(): ~/.ssh/config, as connect() reads it by default; construct()'s own default reads none,
        # which let a `UserKnownHostsFile none` there through unseen.
        settings = await asyncssh.SSHClientConnectionOptions.construct(host=self.spec.address,
                                                                       **{"config": (), **options})
        if settings.known_hosts is not None:
            return
        lines = _known_hosts_none_lines(self.executor.ssh_config)
        where = ", ".join(lines) if lines else "UserKnownHostsFile none, in an included file"
        raise ExecutorError(
            f"host {self.name}: your ssh config turns host-key checking off for it ({where}), so any machine "
            f"answering at its address would be trusted and could run code in this driver. Remove that line "
            f"(and add the host's key to known_hosts), or pass known_hosts=None to SSHExecutor to accept the risk.")

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
        why = f": {info['no_gpu']}" if not gpus and info.get("no_gpu") else ""
        if isinstance(limit, int):
            if limit > len(gpus):  # e.g. nvidia-ml-py missing there: no silent CPU-only host
                raise ExecutorError(f"host {self.name}: gpus={limit} asks for {limit} GPUs, but it shows "
                                    f"{len(gpus)}{why}")
            gpus = gpus[:limit]
        elif isinstance(limit, tuple):
            missing = sorted(set(limit) - {g.index for g in gpus})
            if missing:
                raise ExecutorError(f"host {self.name}: gpus={list(limit)} names GPUs {missing} it does not have "
                                    f"(it has {[g.index for g in gpus]}{why})")
            gpus = [g for g in gpus if g.index in limit]
        cpus = float(self.spec.cpus if self.spec.cpus is not None else info.get("cpus") or 1)
        return HostInventory(name=self.name, cpus=cpus, gpus=gpus, memory_mb=float(info.get("memory_mb", 0.0)))


    # Commands and environment --------------------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The workers' environment: the host's `env` (its `$NAME`s expanded by `command`) and ours."""
        env = dict(self.spec.env)
        env.update(extra or {})
        code_dir = self.files.code_dir
        if code_dir is not None:
            code_dir = code_dir.replace("$", "$$")  # a path, not a reference
            env["PYTHONPATH"] = ":".join(p for p in (code_dir, env.get("PYTHONPATH", "")) if p)
        return env

    @staticmethod
    def command(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> str:
        assignments = [f"{k}={_expanding(v)}" for k, v in env.items()]  # names are checked identifiers
        # sshd hangs up on the session when the connection drops: the worker ignores SIGHUP,
        # sees its input close, and ends its whole process group (see executors/worker.py).
        # umask 077: what the probe, the unpacking and the trials write on the host is private.
        line = "umask 077; trap '' HUP; exec env " + " ".join([*assignments, *(shlex.quote(w) for w in argv)])
        return f"cd {shlex.quote(cwd)} && {line}" if cwd else line

    # Losing and regaining the host ---------------------------------------------------------------

    def _connection_lost(self, connection: Any, exc: Exception | None) -> None:
        if connection not in self.connections or self._closing:
            self.connections.pop(connection, None)
            return
        self._mark_down(f"connection lost: {exc}" if exc else "connection closed by the host")

    def disk_failed(self, error: str) -> None:
        """A trial's directory on this host could not be made: the host is down until its
        probe (which writes into the workdir) succeeds again."""
        self._mark_down(f"its workdir {self.spec.workdir} cannot be written ({error})")

    def _mark_down(self, reason: str) -> None:
        if not self.up:
            return
        self.up, self.down_reason = False, reason
        logger.warning("SSHExecutor: host %s is down (%s); its trials are lost, reconnecting", self.name, reason)
        connections, self.connections = list(self.connections), {}
        for connection in connections:
            connection.close()  # every worker channel ends: their runs get WorkerLostEvent
        self.workers.lose_all(HostUnreachable(self.name, reason))
        self.copies.fail_all(f"host {self.name} is down ({reason})")
        self.copies.close()
        self.sftp = None
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self._heartbeat = None
        self.files.stop_sweeping()
        if not self.executor._closed and self._reconnect is None:
            self._reconnect = self.executor._tasks.spawn(self._reconnect_loop(), f"reconnect-{self.name}")
        self.executor._notify()

    async def _reconnect_loop(self) -> None:
        delay, longest = self.executor.reconnect_backoff_s
        try:
            while not self.executor._closed:
                await asyncio.sleep(delay)
                if not await self.answers():  # still cut off: no connect that would hang until its timeout
                    self.down_reason = f"no answer to a fresh connection within {_PROBE_TIMEOUT_S:g} s"
                    delay = min(delay * 2, longest)
                    continue
                try:
                    await self.connect()
                except HostKeyRefused as exc:  # a key that changed mid-run is news, not a host still down
                    if self.down_reason != str(exc):
                        logger.warning("SSHExecutor: the host key of %s changed (or left known_hosts) during the "
                                       "run: it is not connected and its trials go to the other hosts. To see the key "
                                       "known_hosts holds, the one it offers now and the line to fix: %s",
                                       self.name, exc.inspect)
                    self.down_reason = str(exc)
                    delay = min(delay * 2, longest)
                    continue
                except Exception as exc:
                    self.down_reason = str(exc)
                    logger.info("SSHExecutor: %s still down: %s", self.name, exc)
                    delay = min(delay * 2, longest)
                    continue
                logger.warning("SSHExecutor: host %s is back", self.name)
                if self.workers.lost and self.connections:  # its own task: the host may drop again meanwhile,
                    self.executor._tasks.spawn(  # and then a new reconnect loop must start
                        self.workers.end_lost(next(iter(self.connections))), f"end-lost-{self.name}")
                self.executor._notify()
                return
        finally:
            self._reconnect = None

    # Closing -------------------------------------------------------------------------------------

    async def close(self) -> None:
        tasks = [t for t in (self._reconnect, self._heartbeat) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            async with timeout(30):
                if self.files.sweeper is not None and self.executor.keep_remote_files:
                    await self.files.sweeper  # what is kept is what the experiment left: latest checkpoints
                await self.workers.close()
                self.copies.close()
                if self.up and self.sftp is not None and not self.executor.keep_remote_files:
                    await self.files.remove_experiments()
        except TimeoutErrors:
            logger.warning("SSHExecutor: closing %s took over 30 s", self.name)
        except Exception as exc:
            logger.warning("SSHExecutor: while closing %s: %s", self.name, exc)
        finally:
            self.files.stop_sweeping()
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


_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expanding(value: str) -> str:
    """An env value as a shell word that is literal but for the host's variables, as a shell
    would read them: `$NAME` and `${NAME}` (env.PATH=/usr/local/cuda/bin:$PATH), a leading `~`
    (its home); `$$` is a literal `$`. Nothing else is expanded: no `$(...)`, no globs."""
    if value == "~" or value.startswith("~/"):
        value = "${HOME}" + value[1:]
    words, last = [], 0
    for match in _REFERENCE.finditer(value):
        words.append(shlex.quote(value[last:match.start()]) if match.start() > last else "")
        name = match.group(1) or match.group(2)
        words.append(f'"${{{name}}}"' if name else "'$'")
        last = match.end()
    words.append(shlex.quote(value[last:]) if last < len(value) else "")
    return "".join(words) or "''"


_KNOWN_HOSTS_NONE = re.compile(r"^\s*UserKnownHostsFile(\s*=\s*|\s+)none\s*(#.*)?$", re.IGNORECASE)


def _ssh_command(host: Host, known_hosts: Any, ssh_config: Any, *, batch: bool = False,
                 keys: Sequence[str] | None = None) -> str:
    """`ssh` to the host as the executor connects: its ssh config (which gives an alias its port),
    its known_hosts, the keys it was given, its user and port where the host spec names them.
    With batch=True it runs `true` without prompting: for a changed key, ssh's own message names
    the known_hosts line that disagrees ("REMOTE HOST IDENTIFICATION HAS CHANGED")."""
    words = ["ssh", "-o", "BatchMode=yes"] if batch else ["ssh"]
    configs = [ssh_config] if isinstance(ssh_config, str) else list(ssh_config or [])
    if configs:
        words += ["-F", str(configs[0])]
    if isinstance(known_hosts, str):
        words += ["-o", f"UserKnownHostsFile={known_hosts}"]
    for key in keys or []:
        words += ["-i", str(key)]
    if host.port:
        words += ["-p", str(host.port)]
    target = f"{host.user}@{host.address}" if host.user else host.address
    return "`" + " ".join(shlex.quote(w) for w in [*words, target, *(["true"] if batch else [])]) + "`"


def _known_hosts_none_lines(ssh_config: Sequence[str] | None) -> list[str]:
    """`path:line: text` of each `UserKnownHostsFile none` in the ssh config files read."""
    found = []
    for path in ssh_config or [os.path.expanduser("~/.ssh/config")]:
        try:
            with open(path, errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if _KNOWN_HOSTS_NONE.match(line):
                        found.append(f"{path}:{number}: {line.strip()}")
        except OSError:
            continue
    return found


def compatibility_problem(name: str, info: Mapping[str, Any]) -> str | None:
    """Why a host's probe makes it unusable by this driver, or None. The Python version comes
    first: on another Python, asynctune's own import fails for reasons that only mislead."""
    from ... import __version__

    mine = ".".join(platform.python_version_tuple()[:2])
    theirs = ".".join(str(info.get("python", "?")).split(".")[:2])
    theirs_version = info.get("asynctune")
    if mine != theirs:
        needs = "" if theirs_version == __version__ else f" with asynctune=={__version__}"
        return (f"host {name}: runs Python {info.get('python')} ({info.get('executable')}), the driver Python "
                f"{platform.python_version()}: pickled trainables need the same major.minor; set the host's "
                f"python= to a Python {mine}{needs}")
    if theirs_version is not None and theirs_version != __version__:  # says more than what failed to import
        return (f"host {name}: has asynctune {theirs_version}, the driver {__version__}: install "
                f"asynctune=={__version__} on the host (or point its python= at an environment that has it)")
    if "error" in info or theirs_version is None:
        return (f"host {name}: asynctune cannot be imported by {info.get('executable', 'its python')} "
                f"({info.get('error', 'not installed')}); install asynctune=={__version__} there, or set the "
                f"host's python=")
    if "workdir_error" in info:
        return (f"host {name}: its workdir {info.get('workdir')} cannot be written ({info['workdir_error']}); "
                f"free space or fix its permissions there, or set the host's workdir=")
    return None
