"""Real disk faults for tests, by mounting (root only; a test skips where it cannot mount): a
small tmpfs that fills up (ENOSPC), a read-only bind mount."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest


def mount(path: str, options: list[str]) -> None:
    """`mount OPTIONS path`, making `path` first; skips the test where mounting is not allowed."""
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(["mount", *options, path], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root): {done.stderr.strip()}")


def umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], capture_output=True)


@contextlib.contextmanager
def small_tmpfs(path: str, size: str = "1200k") -> Iterator[str]:
    """A tmpfs of `size` at `path` for the duration; skips the test off Linux or without root.

    Example:
        with small_tmpfs(str(tmp_path / "disk"), "64k") as disk:
            fill(disk)  # writes there now fail with ENOSPC
    """
    if sys.platform != "linux":
        pytest.skip("tmpfs is Linux's")
    mount(path, ["-t", "tmpfs", "-o", f"size={size}", f"asynctune-{uuid.uuid4().hex[:8]}"])
    try:
        yield path
    finally:
        umount(path)


def fill(directory: str) -> None:
    """Write a file into `directory` until its file system is full."""
    with open(os.path.join(directory, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
