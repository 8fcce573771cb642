"""Processes a dead worker left behind, found by the mark every worker's environment carries.

A worker that ends normally ends what its trials started (worker/main.py, `end_descendants`).
A worker that is killed (the OOM killer, SIGKILL) cannot: its children in its process group
go with the group, but one that started a session of its own (a daemon) would live on. Each
local worker gets a token in its environment (`MARK_ENV`), which every process it starts
inherits, and when a worker dies its token finds them.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal

import psutil

logger = logging.getLogger(__name__)

MARK_ENV = "ASYNCTUNE_WORKER_MARK"


def new_mark() -> str:
    return secrets.token_hex(8)


def end_marked(mark: str) -> int:
    """SIGKILL every process of this user whose environment carries `mark`; returns how many.
    Reads /proc/<pid>/environ of this user's processes only: a few milliseconds."""
    me, uid, ended = os.getpid(), os.getuid(), 0
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.pid == me or proc.info["uids"] is None or proc.info["uids"].real != uid:
                continue
            if proc.environ().get(MARK_ENV) == mark:
                proc.send_signal(signal.SIGKILL)
                ended += 1
        except (psutil.Error, OSError):
            continue
    if ended:
        logger.info("ended %d process(es) a dead worker had started", ended)
    return ended
