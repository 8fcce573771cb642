"""One driver per experiment: an exclusive lock held for the driver's whole life.

The lock is `flock(LOCK_EX | LOCK_NB)` on `<experiment>/driver.lock`, a file that also records
who holds it (pid, host, start time, command), so a second driver is refused at once with a
message naming the holder. The kernel drops an flock when the process that holds it ends, however
it ends (SIGKILL included): a killed driver leaves no stale lock to clean up. The file itself is
never deleted (deleting it while another process waits to lock it would let two drivers lock
two different files); an unlocked file with an old holder in it means nothing.

The descriptor is close-on-exec, so worker processes (started by exec) never inherit the lock.
On file systems without working locks (some network and FUSE file systems) the lock cannot be
taken: the driver warns once and goes on unprotected (docs/faults.md).
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import socket
import sys
import time
import weakref
from typing import Any

from ..errors import AsynctuneError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; the driver warns and runs unlocked
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_FILE = "driver.lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # the file system cannot lock


class ExperimentLocked(AsynctuneError, RuntimeError):
    """Another driver (a run, a resume) is driving this experiment now.

    Attributes:
        experiment_dir: The experiment.
        holder: What the holder recorded: pid, host, start_time, command (empty if it had not
            written it yet).
    """

    def __init__(self, experiment_dir: str, holder: dict[str, Any]) -> None:
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('start_time', '?')}"
               + (f": {holder['command']}" if holder.get("command") else "")) if holder else "a process starting now"
        super().__init__(f"{experiment_dir} is being driven by another process ({who}); an experiment has one "
                         "driver at a time: wait for it to end or stop it, then resume")
        self.experiment_dir, self.holder = experiment_dir, holder


class DriverLock:
    """The lock of one experiment directory, held until `release()` or the process ends.

    Example:
        >>> lock = DriverLock.acquire("~/asynctune_results/exp")  # ExperimentLocked if held
        >>> lock.release()
    """

    def __init__(self, experiment_dir: str, fd: int | None) -> None:
        self.experiment_dir, self._fd = experiment_dir, fd
        self._closer = weakref.finalize(self, _close, fd)  # a lock never released is closed with its object

    @classmethod
    def acquire(cls, experiment_dir: str) -> DriverLock:
        """Lock `experiment_dir` (which must exist) for this process, or raise ExperimentLocked
        (ValueError where driver.lock is a symbolic link: it is never followed)."""
        path = os.path.join(experiment_dir, LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise ValueError(f"refusing to lock {path}: it is a directory, not the plain file asynctune "
                                 "makes; it holds nothing asynctune wrote: move it away, then start again") from None
            if exc.errno != errno.ELOOP or not os.path.islink(path):
                raise
            raise ValueError(f"refusing to lock {path}: it is a symbolic link (to {os.path.realpath(path)}), not "
                             "the plain file asynctune makes (a directory from elsewhere?); it holds nothing: "
                             "remove the link, then start again") from None
        try:
            if fcntl is None:
                raise OSError(errno.ENOSYS, "no flock() on this system")
            _lock_or_name_holder(fd, experiment_dir)
        except ExperimentLocked:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_LOCKS:
                raise
            logger.warning("%s: this file system cannot lock files (%s); nothing stops a second driver of this "
                           "experiment, so start only one (docs/faults.md)", experiment_dir, exc.strerror)
            return cls(experiment_dir, None)
        try:
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "start_time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                      "command": " ".join(sys.argv)[:300]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(experiment_dir, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None and self._closer.alive

    def release(self) -> None:
        """Unlock (and forget the holder); a second call does nothing."""
        if self._fd is not None and self._closer.alive:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass  # the directory may be gone; closing unlocks all the same
            self._closer()

    def __enter__(self) -> DriverLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_existing(experiment_dir: str) -> DriverLock | None:
    """Lock an experiment to resume it; None where there is no directory to lock (or none this
    user may write into): resume then says what is wrong with it."""
    path = os.path.abspath(os.path.expanduser(experiment_dir))
    if not os.path.isdir(path):
        return None
    try:
        return DriverLock.acquire(path)
    except (FileNotFoundError, PermissionError):
        return None
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
        raise ValueError(f"cannot resume {path}: it is on a read-only file system, and a resume writes there "
                         "(results, the journal, checkpoints); copy it somewhere writable, or mount it "
                         "read-write") from None


def claim_fresh_name(storage_path: str, base: str) -> str:
    """A default experiment name no other run has: `base`, else `base_2`, `base_3`, ... Each try
    creates the directory exclusively (mkdir), so two runs starting in the same second never get
    the same one (a check that it exists, then a mkdir, would let both pass the check)."""
    root = os.path.abspath(os.path.expanduser(storage_path))
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)  # outside the loop: a file there is no taken name
    except OSError:
        return base  # storage_path cannot be written (a file, no permission): the experiment's creation says so
    name, counter = base, 1
    while True:
        try:
            os.mkdir(os.path.join(root, name), 0o700)
            return name
        except FileExistsError:
            counter += 1
            name = f"{base}_{counter}"
        except OSError:
            return name  # storage_path cannot be written: the experiment's creation says so, clearly


def is_driven(experiment_dir: str) -> bool | None:
    """Whether a live driver holds the experiment's lock now: False for one whose driver was killed
    (its experiment.json still says RUNNING), None where this cannot be told (no lock file, a file
    system without locks). A shared lock taken and dropped at once: a driver starting in that
    moment waits for it (`_lock_or_name_holder` tries again for a while).

    Example:
        >>> is_driven("~/asynctune_results/exp")  # its driver was SIGKILLed
        False
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(os.path.join(experiment_dir, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        return False
    finally:
        os.close(fd)  # drops the shared lock


def read_holder(experiment_dir: str) -> dict[str, Any]:
    """Who recorded holding the lock last ({} if nobody, or it was released)."""
    try:
        fd = os.open(os.path.join(experiment_dir, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


_HOLDER_WAIT_S = 2.0  # how long a refused driver waits for the holder to write who it is
_READER_WAIT_S = 0.1  # how long it tries again at least: the lock may be is_driven()'s, held an instant


def _lock_or_name_holder(fd: int, experiment_dir: str) -> None:
    """flock `fd`, or raise ExperimentLocked naming the holder. A holder writes its record just
    after it locks and empties it just before it unlocks: in either moment the record reads
    empty, so try again for a moment rather than name nobody (or refuse a lock about to be free)."""
    start = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _read_holder(fd)
            waited = time.monotonic() - start  # is_driven()'s shared lock lasts an instant: outwait it
            if (holder and waited >= _READER_WAIT_S) or waited >= _HOLDER_WAIT_S:
                raise ExperimentLocked(experiment_dir, holder) from None
        time.sleep(0.01)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
