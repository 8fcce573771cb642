"""Files between the driver and an SSH host: the project folder's copy, checkpoints both
ways (SFTP), the trials' logs, and the removal of what the host no longer needs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import posixpath
import secrets
import shutil
import socket
import subprocess
import tarfile
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import asyncssh

from ...errors import ExecutorError
from ...store.names import CHECKPOINT_META, LOG_FILES, checkpoint_meta
from ...worker.session import read_checkpoint_meta
from ...store.private_files import make_tree_private
from ...worker.protocol import TrialRequest
from .copies import newest_complete

if TYPE_CHECKING:
    from .host import _RemoteHost

logger = logging.getLogger(__name__)

_LOG_CHUNK = 1 << 20
_PRIVATE_DIR = asyncssh.SFTPAttrs(permissions=0o700)
_PRIVATE_FILE = asyncssh.SFTPAttrs(permissions=0o600)

# Unpacks the project folder's archive next to its final place, then renames it into place.
_UNPACK = r"""
import os, shutil, sys, tarfile
archive, target = sys.argv[1], sys.argv[2]
part = target + ".part-%d" % os.getpid()
def members(member, path):  # the "data" filter, but a link may point anywhere (a shared mount)
    return (tarfile.tar_filter if member.issym() else tarfile.data_filter)(member, path)
with tarfile.open(archive) as tar:
    tar.extractall(part, **({"filter": members} if hasattr(tarfile, "data_filter") else {}))
open(os.path.join(part, ".complete"), "w").close()
try:
    os.rename(part, target)
except OSError:  # another driver unpacked the same code first
    shutil.rmtree(part, ignore_errors=True)
os.unlink(archive)
"""


class HostFiles:
    """The file side of a `_RemoteHost` (host.py): the code it runs, the experiment's folder on
    it, and the copies both ways over its SFTP client (the host's current one)."""

    def __init__(self, host: _RemoteHost) -> None:
        self.host = host
        self.code_dir: str | None = None
        self.experiments: dict[str, str] = {}  # driver experiment dir -> remote one
        self.log_offsets: dict[tuple[str, str], int] = {}
        self.trash: deque[str] = deque()  # superseded checkpoints to remove from the host
        self.sweeper: asyncio.Task[Any] | None = None

    @property
    def sftp(self) -> Any:
        return self.host.sftp

    @property
    def name(self) -> str:
        return self.host.name

    async def install_code(self, connection: Any, archive: bytes, digest: str) -> None:
        code_root = posixpath.join(self.host.info["workdir"], "code")
        target = posixpath.join(code_root, digest)
        if not await self.sftp.exists(posixpath.join(target, ".complete")):
            await self.sftp.makedirs(code_root, attrs=_PRIVATE_DIR, exist_ok=True)
            upload = posixpath.join(code_root, f".{digest}-{secrets.token_hex(4)}.tar.gz")
            async with self.sftp.open(upload, "wb", attrs=_PRIVATE_FILE) as f:
                await f.write(archive)
            result = await connection.run(self.host.command([self.host.spec.python, "-c", _UNPACK, upload, target], {}, None))
            if result.exit_status != 0:
                raise ExecutorError(f"host {self.name}: unpacking the working_dir copy failed: {result.stderr}")
        self.code_dir = target
    def remote_experiment_dir(self, experiment_dir: str) -> str:
        path = self.experiments.get(experiment_dir)
        if path is None:
            digest = hashlib.sha1(f"{socket.gethostname()}:{experiment_dir}".encode()).hexdigest()[:10]
            name = os.path.basename(experiment_dir.rstrip(os.sep)) or "experiment"
            path = self.experiments[experiment_dir] = posixpath.join(self.host.info["workdir"], "experiments",
                                                                     f"{name}-{digest}")
        return path

    async def map_request(self, request: TrialRequest) -> TrialRequest:
        """The request as the host sees it: its trial folder there, its checkpoint uploaded."""
        experiment_dir = request.experiment_dir or os.path.dirname(request.trial_dir)
        remote_experiment = self.remote_experiment_dir(experiment_dir)
        remote_trial = posixpath.join(remote_experiment, _relative(request.trial_dir, experiment_dir))
        request = await self._newest_complete_restore(request)
        restore = request.restore_checkpoint
        if restore is not None:
            restore = await self.upload_checkpoint(restore, request.trial_dir, remote_trial, experiment_dir)
        return replace(request, trial_dir=remote_trial, experiment_dir=remote_experiment, restore_checkpoint=restore)

    async def _newest_complete_restore(self, request: TrialRequest) -> TrialRequest:
        """The request with a checkpoint the driver has whole: the one asked for once its copy
        (copies.py) is done, else the trial's newest complete one, counters and all."""
        wanted = request.restore_checkpoint
        if wanted is None:
            return request

        restore = await newest_complete(self.host.executor._pending_copies, request.trial_dir, wanted,
                                        request.start_iteration)
        if restore == wanted:
            return request
        meta = read_checkpoint_meta(restore) if restore is not None else {}
        logger.warning("SSHExecutor: trial %s restarts on host %s from %s, its newest complete checkpoint: %s was "
                       "never copied to the driver; what it reported since comes again", request.trial_id, self.name,
                       restore or "scratch", wanted)
        return replace(request, restore_checkpoint=restore, start_iteration=int(meta.get("iteration", 0)),
                       start_time_total=float(meta.get("time_total_s", 0.0)))

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
        await self.sftp.makedirs(posixpath.dirname(remote), attrs=_PRIVATE_DIR, exist_ok=True)
        await self.sftp.put(local, part, recurse=True)
        await self._make_private(local, part)
        if await self.sftp.exists(remote):
            await self.sftp.rmtree(remote, ignore_errors=True)
        await self.sftp.rename(part, remote)
        return remote

    async def _make_private(self, local: str, remote: str) -> None:
        """chmod the host's copy of the folder `local`: the SFTP server made it with its own umask."""
        changes = [(remote, 0o700)]
        for directory, subdirs, names in os.walk(local):
            relative = os.path.relpath(directory, local)
            base = remote if relative == "." else posixpath.join(remote, *relative.split(os.sep))
            changes += [(posixpath.join(base, d), 0o700) for d in subdirs]
            changes += [(posixpath.join(base, n), 0o600) for n in names]
        await asyncio.gather(*(self.sftp.chmod(path, mode) for path, mode in changes))

    async def _same_checkpoint(self, local: str, remote: str) -> bool:
        try:
            with open(checkpoint_meta(local), "rb") as f:
                mine = f.read()
            async with self.sftp.open(posixpath.join(remote, CHECKPOINT_META), "rb") as f:
                theirs = await f.read()
        except Exception:
            return False
        return bool(mine) and mine == theirs

    def discard(self, path: str) -> None:
        """Remove a remote folder in the background, off the path of results."""
        self.trash.append(path)
        if self.sweeper is None or self.sweeper.done():
            self.sweeper = self.host.executor._tasks.spawn(self._sweep(), f"sweep-{self.name}")

    async def _sweep(self) -> None:
        while self.trash and self.host.up and self.sftp is not None:
            path = self.trash.popleft()
            try:
                await self.sftp.rmtree(path, ignore_errors=True)
            except Exception as exc:
                logger.debug("could not remove %s on %s: %s", path, self.name, exc)

    def stop_sweeping(self) -> None:
        """The host is down or closing: what was not removed yet stays there."""
        if self.sweeper is not None:
            self.sweeper.cancel()
        self.trash.clear()

    async def remove_experiments(self) -> None:
        for path in self.experiments.values():
            await self.sftp.rmtree(path, ignore_errors=True)

    async def download_dir(self, remote: str, local: str) -> None:
        """Copy a remote folder to `local`, which appears whole or not at all."""
        parent = os.path.dirname(local)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        part = os.path.join(parent, f".{os.path.basename(local)}.part-{secrets.token_hex(4)}")
        try:
            await self.sftp.get(remote, part, recurse=True)
            make_tree_private(part)
            if os.path.isdir(local):
                shutil.rmtree(local, ignore_errors=True)
            os.replace(part, local)
        finally:
            if os.path.exists(part):
                shutil.rmtree(part, ignore_errors=True)

    async def fetch_logs(self, remote_trial: str, trial_dir: str, trial_id: str) -> None:
        """Append what the trial printed on this host since the last fetch to the driver's files."""
        for name in LOG_FILES:
            key = (trial_id, name)
            offset = self.log_offsets.get(key, 0)
            try:
                async with self.sftp.open(posixpath.join(remote_trial, name), "rb") as f:
                    while data := await f.read(_LOG_CHUNK, offset):
                        os.makedirs(trial_dir, mode=0o700, exist_ok=True)
                        with open(os.path.join(trial_dir, name), "ab", opener=_private_opener) as out:
                            out.write(data)
                        offset += len(data)
                        self.log_offsets[key] = offset
            except Exception as exc:  # no such file: the trial printed nothing
                logger.debug("no %s for %s on %s: %s", name, trial_id, self.name, exc)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _inside(path: str, directory: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(directory).rstrip(os.sep) + os.sep)


def _relative(path: str, directory: str, paths: Any = os.path) -> str:
    """`path` relative to `directory` (in `/` form), or its last part when it lies outside."""
    if paths.abspath(path).startswith(paths.abspath(directory).rstrip("/") + "/"):
        return paths.relpath(path, directory).replace(os.sep, "/")
    return paths.basename(path.rstrip("/"))


def project_files(root: str) -> list[str]:
    """The files of a project folder, relative to it, without what .gitignore excludes. Links
    are listed too, those to folders and those whose target is missing here included."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True, timeout=60).stdout
        names = [n for n in out.decode().split("\0") if n]
        return sorted(n for n in names if os.path.isfile(os.path.join(root, n)) or os.path.islink(os.path.join(root, n)))
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in ("__pycache__", "node_modules"))
        names += [d for d in subdirs if os.path.islink(os.path.join(directory, d))]  # os.walk does not enter them
        for name in names:
            if not name.endswith((".pyc", ".pyo")):
                files.append(os.path.relpath(os.path.join(directory, name), root))
    return sorted(files)


def pack_project(root: str) -> tuple[bytes, str]:
    """A gzipped tar of the project folder and a digest of its contents.

    A link to a file travels as that file; a link to a folder, or one whose target is missing
    here, travels as the link itself: `data -> /shared/datasets` works on a host that mounts
    /shared, and a dataset is never packed into the archive."""
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=3) as tar:
        for name in project_files(root):
            path = os.path.join(root, name)
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if os.path.islink(path) and not os.path.isfile(path):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                digest.update(name.encode() + b"\0link\0" + info.linkname.encode())
                tar.addfile(info)
                continue
            with open(path, "rb") as f:
                data = f.read()
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            info.size, info.mode = len(data), os.stat(path).st_mode & 0o700  # private on the host
            tar.addfile(info, io.BytesIO(data))
    if buffer.tell() > 200 * 2**20:
        logger.warning("SSHExecutor: working_dir %s packs to %d MB; list big files in .gitignore", root,
                       buffer.tell() // 2**20)
    return buffer.getvalue(), digest.hexdigest()[:20]
