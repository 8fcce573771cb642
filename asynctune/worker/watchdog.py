"""A process beside each worker that ends it when its driver is gone, also when the worker cannot.

The worker's own watch (a thread in worker/main.py) needs the GIL to act, and a trial in a C call
that holds it (a regex, a C extension's long loop) would keep a worker whose driver was killed
running until the call returns: hours, on a GPU nobody reads. This process holds a copy of the
worker's end of the driver's pipe and nothing else; when the driver's end closes it gives the
worker `GRACE_S` to end itself and its trial's processes, then SIGKILLs what is left. It leaves
by itself when the worker ends, and is no child of the worker (a double fork), so the worker's
end-of-trial sweep of its descendants never sees it.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import time
from typing import Any

GRACE_S = 2.0  # the worker's own watch ends it within this when the GIL is free
# Its process name (what ps and /proc/<pid>/stat show, a zombie's too): a driver that inherits
# orphans reaps these and nothing else (reap_orphaned_watchdogs).
NAME = b"asynctune-wd"
_PR_SET_NAME, _PR_GET_CHILD_SUBREAPER = 15, 37
_LIVENESS_S = 2.0  # how often the worker's pid is looked at (a forked trial child may hold its pipe)


def start_watchdog(read_fd: int) -> int | None:
    """Start the watchdog of this worker, which reads `read_fd` (the driver's pipe).

    Returns the descriptor the worker must keep open while it lives (the watchdog leaves when
    it closes), or None where processes cannot be forked. Call it before the worker starts any
    thread and before it becomes a subreaper (an orphan would be handed back to it)."""
    if not hasattr(os, "fork") or not hasattr(select, "poll"):
        return None
    worker = os.getpid()
    alive_read, alive_write = os.pipe()
    middle = os.fork()
    if middle == 0:  # leaves at once: the watchdog, orphaned, is no descendant of the worker
        try:
            if os.fork() == 0:
                _run(worker, read_fd, alive_read)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)
    os.close(alive_read)
    return alive_write  # os.pipe's descriptors are not inheritable: an exec'd child holds none


def _run(worker: int, read_fd: int, alive_read: int) -> None:
    try:
        os.setsid()  # out of the worker's process group: a kill of that group is the worker's
        _name_this_process()
        _keep_only(read_fd, alive_read)
        if _driver_gone(worker, read_fd, alive_read) and not _ends_within(worker, alive_read, GRACE_S):
            _kill_tree(worker)
    finally:
        os._exit(0)


def _keep_only(*keep: int) -> None:
    """Close every other descriptor (the worker's pipe to the driver above all: the driver and
    sshd wait for its end) and point 0-2 at /dev/null."""
    from .main import close_inherited  # loaded already: the worker's main module started this

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    close_inherited(keep)


def _driver_gone(worker: int, read_fd: int, alive_read: int) -> bool:
    """Wait until the driver's end of the pipe closes (True) or the worker ends (False)."""
    poller = select.poll()
    poller.register(read_fd, 0)  # only POLLHUP/POLLERR, which poll always reports
    poller.register(alive_read, 0)
    while True:
        events = dict(poller.poll(_LIVENESS_S * 1000))
        if alive_read in events or not _alive(worker):
            return False
        if read_fd in events:
            return True


def _ends_within(worker: int, alive_read: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    poller = select.poll()
    poller.register(alive_read, 0)
    while (left := deadline - time.monotonic()) > 0:
        if poller.poll(min(left, 0.1) * 1000) or not _alive(worker):
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def _kill_tree(worker: int) -> None:
    """SIGKILL the worker, every descendant (those that left its session are its children: it is
    a subreaper) and its process group."""
    import psutil

    try:
        root = psutil.Process(worker)
        tree = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for proc in tree:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    try:
        if os.getpgid(worker) == worker:
            os.killpg(worker, signal.SIGKILL)
    except OSError:
        pass


def _prctl(option: int, *args: Any) -> int | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(option, *args)
    except (OSError, AttributeError):  # not Linux
        return None


def _name_this_process() -> None:
    _prctl(_PR_SET_NAME, NAME, 0, 0, 0)


@functools.lru_cache(maxsize=1)  # asked at each worker's exit; a process does not change it
def inherits_orphans() -> bool:
    """Whether orphaned processes become this process's children: as PID 1 (a container started
    without an init) or as a child subreaper. Elsewhere init reaps the watchdogs."""
    if os.getpid() == 1:
        return True
    import ctypes

    flag = ctypes.c_int(0)
    return _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and bool(flag.value)


def watchdogs_left() -> bool:
    """Whether a watchdog is still a child of this process (one that inherits orphans)."""
    import psutil

    try:
        return any(child.name() == NAME.decode() for child in psutil.Process().children())
    except psutil.Error:
        return False


def reap_orphaned_watchdogs() -> int:
    """Reap the ended watchdogs this process inherited (see `inherits_orphans`); returns how many.

    A watchdog is orphaned by design (a double fork), so where the driver inherits orphans each
    ended one would stay a zombie of the driver's. Only zombies named NAME are reaped: the exit
    statuses of the driver's other children (its workers, a user's subprocesses) are their
    owners' to collect."""
    import psutil

    reaped = 0
    try:
        children = [child.pid for child in psutil.Process().children()]
    except psutil.Error:
        return 0
    for pid in children:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                name, _, rest = f.read().partition(b"(")[2].rpartition(b")")
            if name == NAME and rest.split()[:1] == [b"Z"] and os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped += 1
        except (OSError, ChildProcessError):  # gone, or collected by someone else meanwhile
            continue
    return reaped


