"""Processes a dead worker left behind, found by the mark every worker's environment carries.

A worker that ends normally ends what its trials started (worker/main.py, `end_descendants`),
and a worker the driver kills has its whole process tree ended (local.py, `kill_process_tree`).
A worker that dies on its own (the OOM killer, SIGKILL) can do neither: its children in its
process group go with the group, but one that started a session of its own (a daemon) would
live on. Each local worker gets a token in its environment (`MARK_ENV`), which every process
it starts inherits, and when a worker dies its token finds them (Linux: /proc; elsewhere psutil).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal

logger = logging.getLogger(__name__)

MARK_ENV = "ASYNCTUNE_WORKER_MARK"


def new_mark() -> str:
    return secrets.token_hex(8)


def end_marked(mark: str) -> int:
    """SIGKILL every process of this user whose environment carries `mark`; returns how many.
    Reads the environment of this user's processes only: a few milliseconds."""
    needle = f"{MARK_ENV}={mark}".encode()
    ended = 0
    for pid in _marked(needle):
        try:
            os.kill(pid, signal.SIGKILL)
            ended += 1
        except OSError:
            pass
    if ended:
        logger.info("ended %d process(es) a dead worker had started", ended)
    return ended


def _marked(needle: bytes) -> list[int]:
    me, uid = os.getpid(), os.getuid()
    if not os.path.isdir("/proc/self"):
        return _marked_psutil(needle.decode(), me, uid)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                variables = f.read().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in variables:
            found.append(int(name))
    return found


def _marked_psutil(variable: str, me: int, uid: int) -> list[int]:
    import psutil

    name, _, value = variable.partition("=")
    found = []
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.pid != me and proc.info["uids"] is not None and proc.info["uids"].real == uid \
                    and proc.environ().get(name) == value:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found
