"""Files only the user can read, and pickles only the user can have written.

Unpickling runs code, so a pickle another local user could have placed or changed is refused:
the file and its directory must be owned by the user (or root) and not writable by group or
others. What asynctune writes is created private (directories 0700, files 0600).
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any

from ..errors import UnsafeFileError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_dir_private(path: str) -> bool:
    """Make the directory `path` 0700; True if it was made now, False if it was there already.
    Its parent must exist (FileNotFoundError): a trial's directory never makes its experiment's
    again, deleted or moved away under the run."""
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
        return True
    except FileExistsError:
        return False


def create_private(path: str) -> int:
    """A new file (it must not exist), 0600, opened for writing: its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)


def makedirs_private(path: str) -> None:
    """Create `path` (and missing parents) 0700; an existing directory is left as it is."""
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)


def open_private(path: str, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """open() for a file that is 0600, whether it is created now or was there before."""
    flags = os.O_RDWR if "+" in mode else os.O_WRONLY
    flags |= os.O_CREAT | (os.O_APPEND if "a" in mode else 0) | (os.O_TRUNC if "w" in mode else 0)
    if "x" in mode:
        flags |= os.O_EXCL
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_FILE_MODE)  # a file left by an older version, or made under another umask
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def make_tree_private(path: str) -> None:
    """chmod a directory the trial wrote (or copied in) to 0700, its files to 0600."""
    os.chmod(path, PRIVATE_DIR_MODE)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _chmod_quietly(os.path.join(root, name), PRIVATE_DIR_MODE)
        for name in files:
            _chmod_quietly(os.path.join(root, name), PRIVATE_FILE_MODE)


def _chmod_quietly(path: str, mode: int) -> None:
    if os.path.islink(path):
        return  # chmod would follow it to a file that is not ours to change
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def check_private(path: str) -> None:
    """Raise UnsafeFileError unless `path` and its directory are owned by the user (or root) and
    not writable by group or others: then no other local user can have put or changed it."""
    if not hasattr(os, "geteuid"):
        return  # no POSIX owners and modes to check (Windows)
    real = os.path.realpath(path)
    me = os.geteuid()
    for what, target in (("directory", os.path.dirname(real)), ("file", real)):
        info = os.stat(target)
        if info.st_uid not in (me, 0):
            raise UnsafeFileError(path, f"its {what} {target} is owned by uid {info.st_uid}, not by you (uid {me})",
                                  f"chown {me} {target}")
        writers = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if info.st_mode & bit]
        if writers:
            fix = "chmod go-w" if what == "file" else "chmod 700"
            raise UnsafeFileError(path, f"its {what} {target} is writable by {' and '.join(writers)} "
                                  f"(mode {stat.S_IMODE(info.st_mode):04o})", f"{fix} {target}")

