"""Checkpoints published atomically: a reader (resume, the analysis) sees one whole or not at all.

Every checkpoint directory (one a trial saves, a donor's that PBT clones, an SSH host's copied
back) is completed under a temporary name in the trial's own directory, `.tmp-<name>-<random>`,
and then renamed to `checkpoint_<...>`. A rename within one directory is atomic, so a driver or
worker killed at any instant leaves either the finished checkpoint or a `.tmp-` directory that
nothing reads (`latest_checkpoint` and the analysis only look at `checkpoint_*` names);
`sweep_staging` removes those on resume. Removing a checkpoint (keep_checkpoints_num) renames it
to `.trash-` first, so no half-deleted checkpoint is ever under its old name either.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Any

STAGING_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


def staging_dir(trial_dir: str, name: str) -> str:
    """A new private directory beside the checkpoint `name` will be, to fill before `publish`.
    The trial's directory is made if it is missing, but not its parents: an experiment directory
    deleted under the run is not made again here (the run notices it and ends, store.vanished)."""
    try:
        os.mkdir(trial_dir, 0o700)
    except FileExistsError:
        pass
    return tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{name}-", dir=trial_dir)  # created 0700


def publish(staging: str, target: str) -> str:
    """Rename the complete directory `staging` to `target` (an older `target` is replaced)."""
    try:
        os.rename(staging, target)
    except OSError:
        if not os.path.isdir(target):
            raise
        # The same checkpoint saved again (a trial restarted from an earlier one): set the old one
        # aside in one rename, put the new one in its place in another, then delete the old one.
        discard(target)
        os.rename(staging, target)
    return target


def clone(source: str, trial_dir: str, name: str) -> str:
    """Copy another trial's checkpoint `source` to `<trial_dir>/<name>` (PBT's exploit), atomically."""
    staging = staging_dir(trial_dir, name)
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        return publish(staging, os.path.join(trial_dir, name))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def discard(path: str) -> None:
    """Delete a checkpoint directory; from the first instant it no longer has its name."""
    parent, name = os.path.split(path)
    try:
        trash = tempfile.mkdtemp(prefix=f"{TRASH_PREFIX}{name}-", dir=parent)
        os.rename(path, os.path.join(trash, name))
    except FileNotFoundError:
        return
    except OSError:  # cannot rename (a read-only parent?): delete in place as before
        shutil.rmtree(path, ignore_errors=True)
        return
    shutil.rmtree(trash, ignore_errors=True)


def manifest(checkpoint: str) -> dict[str, int]:
    """Every file of a complete checkpoint with its size ("/"-separated paths), kept in its
    metadata: a copy of the experiment that stopped part way (cp -r, rsync, an archive) may
    have the metadata but lack a file or hold it cut short, which `incomplete` then tells."""
    files: dict[str, int] = {}
    for parent, _, names in os.walk(checkpoint):
        for name in names:
            info = os.lstat(os.path.join(parent, name))
            if stat.S_ISREG(info.st_mode):
                files[os.path.relpath(os.path.join(parent, name), checkpoint).replace(os.sep, "/")] = info.st_size
    return files


def incomplete(checkpoint: str, files: Any) -> str | None:
    """What of its manifest `files` the checkpoint lacks or holds cut short; None if it is whole,
    or has no manifest (written before manifests were kept)."""
    if not isinstance(files, dict):
        return None
    for name, size in files.items():
        try:
            found = os.stat(os.path.join(checkpoint, *str(name).split("/"))).st_size
        except OSError:
            return f"{name} is missing"
        if found != size:
            return f"{name} has {found} of its {size} bytes"
    return None


def sweep_staging(trial_dir: str) -> list[str]:
    """Remove what a killed writer left half done in a trial's directory; returns the names."""
    try:
        names = [n for n in os.listdir(trial_dir) if n.startswith((STAGING_PREFIX, TRASH_PREFIX))]
    except OSError:
        return []
    for name in names:
        path = os.path.join(trial_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    return names
