"""Paths into an experiment directory made from what its files say: no id as a path, no link out.

An experiment directory may come from elsewhere (a colleague's copy, an archive), and what its
files hold is data, not a path to trust. So a name read from a file (a trial_id in
experiment.json) is used as a path only if it is one plain path component, and a file is read
only if it really is inside the experiment: a symbolic link that leads out of it (to another
user's files, to /etc) is refused, whoever reads it (the analysis, `asynctune show/plot`, the
dashboard).

    >>> is_plain_name("trial_00003"), is_plain_name("../../x")
    (True, False)
"""

from __future__ import annotations

import os

from ..errors import AsynctuneError


class LinkOutside(AsynctuneError, ValueError):
    """A file or directory of an experiment leads outside it (a symbolic link): it is not read.

    Attributes:
        path: The path as the experiment names it.
        target: Where it really leads.
        root: The experiment directory it must stay in.
    """

    def __init__(self, path: str, target: str, root: str) -> None:
        super().__init__(f"refusing to read {path}: it leads to {target}, outside {root} (a symbolic link); "
                         "an experiment's files must be inside its directory")
        self.path, self.target, self.root = path, target, root


class BadName(AsynctuneError, ValueError):
    """A name read from an experiment's file (a trial_id) that is not one plain path component."""

    def __init__(self, value: object, what: str, source: str) -> None:
        super().__init__(f"{source}: {what} {value!r} is not a plain name (one path component, no '/', "
                         "not '.' or '..'); the file is damaged or was made to reach outside the experiment")
        self.value, self.what, self.source = value, what, source


def is_plain_name(name: object) -> bool:
    """One path component that names an entry of its directory, nothing that climbs out of it."""
    return (isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name
            and "\\" not in name and "\0" not in name and not name.startswith("."))


def check_name(value: object, *, what: str, source: str) -> str:
    """`value` if it is a plain name (see is_plain_name), else BadName naming `source`."""
    if not is_plain_name(value):
        raise BadName(value, what, source)
    return value  # type: ignore[return-value]


def inside(root: str, path: str) -> bool:
    """Whether `path`, links resolved, is `root` or inside it (`root`'s own links are its own)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or os.path.commonpath([real, real_root]) == real_root


def checked(root: str, path: str) -> str:
    """`path`, after making sure it does not lead outside `root` (LinkOutside if it does)."""
    if not inside(root, path):
        raise LinkOutside(path, os.path.realpath(path), root)
    return path


def refuse_links_out(root: str) -> None:
    """LinkOutside for the first entry of `root`, or of a directory in it (a trial's), that is a
    link leading outside `root`: resume writes where it reads (it rewinds result.jsonl), so it
    must not follow one. Deeper files (what a trainable put in a checkpoint) are the trial's."""
    pending, depth = [root], 0
    while pending and depth < 2:
        below = []
        for directory in pending:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        checked(root, entry.path)
                    elif entry.is_dir(follow_symlinks=False):
                        below.append(entry.path)
        pending, depth = below, depth + 1
