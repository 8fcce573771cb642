"""Checkpoint copies from an SSH host to the driver, in the background and in batches.

A trial's result reaches the controller at once, naming the driver path its checkpoint will
have; the copy follows. Every checkpoint waiting on one host goes in the next batch: one tar
stream from the host's long-lived copier process (worker/copier.py), whatever the number of
files, instead of an SFTP round trip per file. Each copy appears on the driver whole or not at
all (unpacked aside, then renamed into place), and the host keeps the checkpoint until then
(workers.py removes an older one only after a newer one is here).

`newest_complete` is what a restart asks: the driver path of the trial's checkpoint once its
copy under way is done, or else its newest complete one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...core.compat import TimeoutErrors, timeout
from ...store.names import is_checkpoint_name
from ...worker.session import read_checkpoint_meta
from ...store.private_files import make_tree_private

if TYPE_CHECKING:
    from .host import _RemoteHost

logger = logging.getLogger(__name__)

_BATCH = 64  # checkpoints per tar stream (the command line names each)
_CHUNK = struct.Struct(">I")  # worker/copier.py's chunk header


@dataclass
class _Copy:
    remote: str
    local: str
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CheckpointCopies:
    """The background copies of one host's checkpoints (see the module's docstring)."""

    def __init__(self, host: _RemoteHost) -> None:
        self.host = host
        self._queue: list[_Copy] = []
        self._copier_task: asyncio.Task[Any] | None = None
        self._process: Any = None  # the host's copier process, once started

    def submit(self, remote: str, local: str) -> asyncio.Future[str]:
        """Copy the host's folder `remote` to the driver's `local`; the future gives `local`."""
        copy = _Copy(remote, local)
        copy.done.add_done_callback(_quiet)
        self.host.executor._pending_copies[local] = copy.done
        copy.done.add_done_callback(lambda _: self.host.executor._pending_copies.pop(local, None)
                                    if self.host.executor._pending_copies.get(local) is copy.done else None)
        self._queue.append(copy)
        if self._copier_task is None or self._copier_task.done():
            self._copier_task = self.host.executor._tasks.spawn(self._run(), f"copies-{self.host.name}")
            if self._copier_task is None:  # the executor is closing: nothing more is copied
                self.fail_all(f"{self.host.name} is closing")
        return copy.done

    def fail_all(self, reason: str) -> None:
        """The host is down or closing: the copies not made now never will be."""
        queue, self._queue = self._queue, []
        for copy in queue:
            if not copy.done.done():
                copy.done.set_exception(ConnectionError(reason))

    async def _run(self) -> None:
        while self._queue and self.host.up:
            batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            try:
                await self._copy_batch(batch)
            except Exception as exc:
                for copy in batch:
                    if not copy.done.done():
                        copy.done.set_exception(exc)
        self.fail_all(f"host {self.host.name} is down")

    async def _copier(self) -> Any:
        """The host's copier process (worker/copier.py), started on the first copy."""
        process = self._process
        if process is not None and process.exit_status is None and not process.stdin.is_closing():
            return process
        host = self.host
        connection = min(host.connections, key=host.connections.__getitem__)  # the one with most room
        command = host.command([host.spec.python, "-m", "asynctune.worker.copier"], host.env(), None)
        process = self._process = await connection.create_process(command, encoding=None)
        host.connections[connection] = host.connections.get(connection, 0) + 1
        return process

    async def _copy_batch(self, batch: Sequence[_Copy]) -> None:
        host = self.host
        staging = os.path.join(os.path.dirname(os.path.dirname(batch[0].local)),
                               f".copies-{secrets.token_hex(4)}")
        os.makedirs(staging, mode=0o700)
        archive = staging + ".tar"
        try:
            try:
                process = await self._copier()
                process.stdin.write(json.dumps([c.remote for c in batch]).encode() + b"\n")
                with open(archive, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
                    while size := _CHUNK.unpack(await process.stdout.readexactly(_CHUNK.size))[0]:
                        out.write(await process.stdout.readexactly(size))
            except BaseException:
                self._process = None  # its stream is out of step now: the next batch starts another
                raise
            await asyncio.to_thread(_unpack, archive, staging)
            for copy in batch:
                staged = os.path.join(staging, copy.remote.lstrip("/"))
                if not os.path.isdir(staged):
                    copy.done.set_exception(FileNotFoundError(f"{copy.remote} is not on {host.name}"))
                    continue
                make_tree_private(staged)
                os.makedirs(os.path.dirname(copy.local), mode=0o700, exist_ok=True)
                if os.path.isdir(copy.local):
                    shutil.rmtree(copy.local, ignore_errors=True)
                os.replace(staged, copy.local)  # whole or not at all
                copy.done.set_result(copy.local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if os.path.exists(archive):
                os.unlink(archive)

    def close(self) -> None:
        """End the copier (its input closes, so it exits)."""
        process, self._process = self._process, None
        if process is not None:
            process.stdin.write_eof() if not process.stdin.is_closing() else None
            process.close()


def _unpack(archive: str, target: str) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a lost copy is handled where it is needed, not logged as a bug


async def newest_complete(pending: dict[str, asyncio.Future[str]], trial_dir: str, wanted: str | None,
                          iteration: int, wait_s: float = 120.0) -> str | None:
    """The checkpoint to restart a trial from: `wanted` once its copy (if under way) is done,
    else the newest complete checkpoint in `trial_dir` up to `iteration` (`wanted`'s: one
    taken later belongs to a result that was dropped), or None: from scratch."""
    if wanted is None:
        return None
    copying = pending.get(wanted)
    if copying is not None:
        try:
            async with timeout(wait_s):
                await asyncio.shield(copying)
        except (Exception, *TimeoutErrors):
            pass
    if os.path.isdir(wanted) and (copying is None or _succeeded(copying)):
        return wanted
    if not os.path.abspath(wanted).startswith(os.path.abspath(trial_dir) + os.sep):
        return wanted if os.path.isdir(wanted) else None
    best, best_iteration = None, -1
    try:
        names = os.listdir(trial_dir)
    except OSError:
        return None
    for name in names:
        path = os.path.join(trial_dir, name)
        if not is_checkpoint_name(name) or path in pending or not os.path.isdir(path):
            continue
        taken_at = int(read_checkpoint_meta(path).get("iteration", -1))
        if best_iteration < taken_at <= iteration:
            best, best_iteration = path, taken_at
    return best
