"""Trials on a few machines reachable by SSH, as one pool, from one driver.

Each host runs the same worker as the local executor (`python -m asynctune.worker`), started
over an SSH session channel; the framed protocol runs over that channel's stdin/stdout, so
pickles travel only inside SSH. Nothing listens on any port.

Parts: this module (the executor and `hosts check`), host.py (a host's connections and
health), workers.py (its worker pool and trial runs), sync.py (files both ways), copies.py
(checkpoints to the driver in the background), stragglers.py (a warning naming a slow host).

Per host, the executor connects (asyncssh: keys, agent, ~/.ssh/config with ProxyJump, host
keys checked against known_hosts), probes Python, asynctune, CPUs and GPUs, copies the user's
project folder once (SFTP), and keeps worker channels open for reuse; start() does not wait
for a slow host, which joins when it is ready. Trials run pipelined where the scheduler allows
(worker/session.py): a result does not wait a round trip for its decision. Trial folders live
under the host's workdir; every checkpoint a trial reports is copied back to the driver in the
background (copies.py), under the driver path the controller is told, and a restart uses the
newest complete copy, so losing a host loses no progress that reached the driver. A host that
drops or stops answering (keepalive, then a fresh probe) is marked down, its trials get a
`WorkerLostEvent`, and it is reconnected in the background.

    python -m asynctune.executors.ssh check gpu1 alice@gpu2:2222
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

try:
    with warnings.catch_warnings():  # asyncssh's import makes cryptography warn about DSA: noise, not the user's
        warnings.filterwarnings("ignore", category=UserWarning, module=r"asyncssh(\.|$)")
        import asyncssh  # noqa: F401
except ImportError as _exc:  # pragma: no cover
    raise ImportError("the SSH executor needs asyncssh: pip install 'asynctune[ssh]'") from _exc

from ...errors import ExecutorError, HostUnreachable
from ...core.resources import HostInventory, Placement
from ..base import Executor, TrialRun
from .hosts import Host, parse_host_line, parse_hosts, read_hosts_file
from ...worker.protocol import TrialRequest
from .host import _DEFAULT, _RemoteHost, compatibility_problem
from .stragglers import StragglerWatch
from .sync import pack_project, project_files
from ..tasks import OwnedTasks

logger = logging.getLogger(__name__)

__all__ = ["SSHExecutor", "check_hosts", "check_hosts_async", "compatibility_problem", "format_check", "main",
           "pack_project", "project_files"]


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
        keepalive_interval_s: Ping each host this often (an SFTP round trip on its connection).
            A ping unanswered within max(1.5 s, 2 intervals) is followed by a fresh probe (a new
            TCP connection that must show the SSH banner within 1.5 s): a host failing both is
            down, as is one whose connection drops; one whose probe answers stays up (a
            connection stalled for over 15 s while the host answers is down too). 0: no pings.
        reconnect_backoff_s: (first, longest) wait between reconnection attempts to a down host;
            each attempt starts with the same fresh probe, so a host is back within about
            `longest` + 1.5 s of answering again.
        skip_unreachable: Start without the hosts that cannot be reached at start (with a
            warning) instead of failing.
        keep_remote_files: Keep each host's copy of the experiment's trial folders after the
            experiment (by default they are removed: the driver has every checkpoint and log).
        kill_grace_s: Time between SIGTERM and SIGKILL when a trial's process group is ended.
        sessions_per_connection: Channels per SSH connection before another connection is
            opened (sshd's MaxSessions is 10 by default).
        wait_for_hosts_s: start() returns once one host is ready and every other one is ready
            too, has failed, or has had this much longer; a host still connecting then joins
            the pool (and takes trials) when it is ready, or is left out with a warning.
    """

    pipelines_decisions = True  # results that need no answer at once do not wait a round trip
    pipelines_stop_criteria = True  # a stop criterion's STOP may land a step late (docs/ssh.md)

    def __init__(self, hosts: Iterable[Host | str | Mapping[str, Any]], *, known_hosts: Any = _DEFAULT,
                 client_keys: Sequence[str] | None = None, ssh_config: str | Sequence[str] | None = None,
                 working_dir: str | os.PathLike[str] | None = None, reuse_workers: bool = True,
                 connect_timeout_s: float = 15.0, keepalive_interval_s: float = 1.0,
                 reconnect_backoff_s: tuple[float, float] = (0.5, 2.0), skip_unreachable: bool = False,
                 keep_remote_files: bool = False, kill_grace_s: float = 3.0, sessions_per_connection: int = 8,
                 wait_for_hosts_s: float = 1.0) -> None:
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
        if not wait_for_hosts_s >= 0:
            raise ValueError(f"SSHExecutor: wait_for_hosts_s must be >= 0, got {wait_for_hosts_s=}")
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
        self._tasks = OwnedTasks("SSHExecutor")  # heartbeats, reconnections, event pipelines
        self.wait_for_hosts_s = wait_for_hosts_s
        self._order: dict[str, int] = {}  # host name -> its place in `hosts`
        self._stragglers = StragglerWatch()  # a WARNING naming a host far slower than the others
        self._pending_copies: dict[str, asyncio.Future[str]] = {}  # driver checkpoint path -> its copy
        self._log_fetches: dict[str, asyncio.Task[Any]] = {}  # trial id -> its logs' fetch
        self._closed = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A run spec saved before _DEFAULT pickled as itself holds a bare object() there.
        if type(state.get("known_hosts")) is object:
            state["known_hosts"] = _DEFAULT
        self.__dict__.update(state)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> SSHExecutor:
        """An executor for the hosts of a hosts file (see asynctune.executors.ssh.hosts)."""
        return cls(read_hosts_file(path), **options)

    # Executor ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:  # used again for another experiment: connect afresh
            self._remotes, self._closed = {}, False
        if self._remotes:
            return
        await self._tasks.open()
        try:
            await self._connect_all()
        except BaseException:
            await self._tasks.close()
            raise

    async def _connect_all(self) -> None:
        """Connect to every host at once; return when one is ready and the others are ready too,
        have failed, or have had `wait_for_hosts_s` more: those still connecting join later."""
        if self.working_dir is not None:
            self._code = await asyncio.to_thread(pack_project, self.working_dir)
        remotes = [_RemoteHost(self, host) for host in self.hosts]
        self._order = {remote.name: index for index, remote in enumerate(remotes)}
        failures: list[tuple[_RemoteHost, BaseException]] = []
        settled = asyncio.Event()
        first_ready = asyncio.Event()
        started = False
        left = len(remotes)

        async def join(remote: _RemoteHost) -> None:
            nonlocal left
            try:
                await remote.connect()
            except Exception as exc:
                failures.append((remote, exc))
                if started:
                    logger.warning("SSHExecutor: leaving out %s, which joined late: %s", remote.name, exc)
            else:
                if self._closed:
                    await remote.close()
                    return
                self._remotes[remote.name] = remote
                first_ready.set()
                if started:
                    logger.warning("SSHExecutor: host %s joined late; it takes trials now", remote.name)
                    self._notify()
            finally:
                left -= 1
                if not left:
                    settled.set()

        for remote in remotes:
            self._tasks.spawn(join(remote), f"connect-{remote.name}")
        settled_wait = asyncio.ensure_future(settled.wait())
        try:
            await asyncio.wait([settled_wait, asyncio.ensure_future(first_ready.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if not settled.is_set():
                await asyncio.wait([settled_wait], timeout=self.wait_for_hosts_s)
        finally:
            settled_wait.cancel()
        started = True
        late = [r.name for r in remotes if r.name not in self._remotes and all(r is not f for f, _ in failures)]
        fatal = [e for _, e in failures if not isinstance(e, HostUnreachable) or not self.skip_unreachable]
        if fatal or not self._remotes:
            connected = sorted(self._remotes)
            await self._tasks.close()  # hosts still connecting stop
            await asyncio.gather(*(r.close() for r in self._remotes.values()), return_exceptions=True)
            self._remotes.clear()
            errors = [e for _, e in failures] or [ExecutorError(f"no host connected within the wait: {late}")]
            if connected and all(isinstance(e, HostUnreachable) for e in errors):
                errors[-1].args = (f"{errors[-1]}. The other hosts ({', '.join(connected)}) connected: "
                                   f"SSHExecutor(..., skip_unreachable=True) starts without the unreachable ones",)
            if len(errors) == 1:
                raise errors[0]
            raise ExecutorError("SSHExecutor could not start:\n" + "\n".join(f"  {e}" for e in errors))
        for remote, error in failures:
            logger.warning("SSHExecutor: leaving out %s: %s", remote.name, error)
        if late:
            logger.warning("SSHExecutor: starting without %s, still connecting: each takes trials once it has "
                           "joined", ", ".join(late))

    def inventories(self) -> list[HostInventory]:
        if not self._remotes:
            raise ExecutorError("SSHExecutor.start() was not called")
        remotes = sorted(self._remotes.values(), key=lambda r: self._order.get(r.name, 0))  # the hosts' order
        return [r.inventory for r in remotes if r.inventory is not None]

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
        return await remote.workers.launch(request, placement)

    async def close(self) -> None:
        self._closed = True
        await self._finish_copies()
        try:
            await asyncio.gather(*(r.close() for r in self._remotes.values()), return_exceptions=True)
        finally:
            await self._tasks.close()

    async def _finish_copies(self, wait_s: float = 60.0) -> None:
        """Let the checkpoint copies and log fetches under way finish (the experiment's files
        are whole on the driver), then remove what is left of the hosts' files."""
        pending = [*self._pending_copies.values(), *self._log_fetches.values()]
        if pending:
            done, late = await asyncio.wait(pending, timeout=wait_s)
            if late:
                logger.warning("SSHExecutor: %d checkpoint copies or log fetches did not finish within %g s",
                               len(late), wait_s)

    def _notify(self) -> None:
        for callback in self._watchers:
            callback()

    # For tests and `hosts check` ----------------------------------------------------------------

    @property
    def remote_info(self) -> dict[str, dict[str, Any]]:
        """What each host's probe reported (python, asynctune, cpus, gpus, workdir...)."""
        return {name: dict(r.info) for name, r in self._remotes.items()}


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
            sftp = await remote.start_sftp(connection)
            rounds = []
            for _ in range(3):
                begin = time.perf_counter()
                await sftp.stat(".")
                rounds.append(time.perf_counter() - begin)
            row["latency_ms"] = round(min(rounds) * 1000, 2)
            info = await remote._probe(connection)
            gpus = info.get("gpus")  # none: asynctune, which counts them, did not load there
            row.update(python=info.get("python"), asynctune=info.get("asynctune"), cpus=info.get("cpus"),
                       gpus=None if gpus is None else [{"index": g.get("index"), "name": g.get("name"),
                                                        "memory_total_mb": g.get("memory_total_mb")} for g in gpus])
            row["reason"] = compatibility_problem(host.label, info) or ""
            if not row["reason"]:
                # What the executor checks next (gpus= it lacks): the same verdict. The columns
                # then say what it will offer: cpus= and gpus= applied.
                inventory = remote._make_inventory(info)
                row["cpus"] = int(inventory.cpus) if float(inventory.cpus).is_integer() else inventory.cpus
                offered = {gpu.index for gpu in inventory.gpus}
                row["gpus"] = [g for g in row["gpus"] or [] if g["index"] in offered]
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

    from ...cli.hosts import parse_with_hosts_anywhere

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
    args = parse_with_hosts_anywhere(parser, argv)
    try:
        hosts: list[Any] = [parse_host_line(h) if " " in h.strip() else h for h in args.hosts]
        if args.hosts_file:
            hosts += read_hosts_file(args.hosts_file)
        parse_hosts(hosts or ["-"])  # distinct names, before any connection
    except (OSError, ValueError) as exc:  # a bad line or option: the message names it, no traceback
        check.error(str(exc))
    if not hosts:
        check.error("name at least one host, or --hosts-file")
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