"""Worker processes on this machine: the import paths they need, and ending a whole process
tree (a trial's data loaders and other children included). Used by the local executor and by
any executor that starts `python -m asynctune.worker` itself (see examples/subprocess_executor.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import psutil

logger = logging.getLogger(__name__)


async def kill_process_tree(pid: int, *, grace_s: float = 3.0, exited: asyncio.Future | None = None) -> None:
    """SIGTERM the process and all its descendants, wait up to grace_s, SIGKILL what is left.

    When the process is our own child, pass `exited` (resolved by the event loop when it is
    reaped): psutil must not wait on it, or it would reap the child behind the loop's back.
    """
    try:
        parent = psutil.Process(pid)
        descendants = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        parent, descendants = None, []
    others = descendants if exited is not None else descendants + ([parent] if parent else [])
    for proc in ([parent] if parent else []) + descendants:
        _signal(proc, signal.SIGTERM)

    def wait_others(timeout: float) -> list[psutil.Process]:
        return psutil.wait_procs(others, timeout=timeout)[1]

    alive = await asyncio.to_thread(wait_others, grace_s)
    if exited is not None and parent is not None:
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace_s)
        except (TimeoutError, asyncio.TimeoutError):
            _signal(parent, signal.SIGKILL)
            try:  # SIGKILL ends it at once, unless it is stuck in the kernel (a dead NFS mount)
                await asyncio.wait_for(asyncio.shield(exited), _KILLED_EXIT_S)
            except (TimeoutError, asyncio.TimeoutError):
                logger.warning("worker %d has not exited %.0f s after SIGKILL (stuck in the kernel?); going on",
                               pid, _KILLED_EXIT_S)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    if alive:
        await asyncio.to_thread(psutil.wait_procs, alive, timeout=grace_s)


_KILLED_EXIT_S = 10.0  # how long a SIGKILLed worker may take to be reaped before the driver goes on


def _signal(proc: psutil.Process, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except psutil.NoSuchProcess:
        pass


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def driver_import_paths() -> list[str]:
    """The driver's own import paths (its script's directory, the working directory, paths it
    added), so a worker imports the modules a cloudpickled trainable refers to by name."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = []
    for path in [os.getcwd(), *sys.path]:
        path = os.path.abspath(path or os.getcwd())
        real = os.path.realpath(path)
        if not os.path.isdir(path) or path in paths or any(real.startswith(p + os.sep) for p in prefixes):
            continue  # the worker's interpreter already has its own stdlib and site-packages
        paths.append(path)
    return paths
