"""Noticing that a directory was deleted under a running experiment.

An open file keeps working after its directory is deleted: the driver would go on appending
results to a file nobody can read, end the trial as finished and call it the best. So:
- on the controller's tick (twice a second, when it flushes progress.csv) each open result.jsonl
  is checked with an fstat: no link left (`st_nlink == 0`) means it, or its directory, was
  deleted (`check_file`); not per result, which would cost a system call on the hot path;
- the controller's tick (twice a second) checks that the experiment directory is still the one it
  started with (same device and inode: a directory made again under the same name is not it);
- at the end, every trial that reported must still have its result file (`missing_results`).
Any of these ends the experiment with `DirectoryVanished` naming what disappeared; the trials
whose results are gone are marked ERROR, so none of them is ever the best.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import IO, Any

from ..errors import AsynctuneError


class DirectoryVanished(AsynctuneError, OSError):
    """A directory of a running experiment (a trial's, or the experiment's own) was deleted.

    Attributes:
        path: What disappeared.
    """

    def __init__(self, path: str, what: str = "the directory") -> None:
        message = (f"{what} {path} was deleted while the experiment ran: the results written there are gone; "
                   "the experiment ended")
        super().__init__(errno.ENOENT, message, path)
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def check_file(file: IO[Any] | int, path: str) -> None:
    """Raise DirectoryVanished if the open `file` (or descriptor, at `path`) was deleted, with its
    directory or alone."""
    if os.fstat(file if isinstance(file, int) else file.fileno()).st_nlink == 0:
        raise _vanished(path)


def _vanished(path: str) -> DirectoryVanished:
    """The error naming the outermost of `path` and its directories that is gone."""
    gone, parent = path, os.path.dirname(path)
    while parent != gone and not os.path.isdir(parent):
        gone, parent = parent, os.path.dirname(parent)
    return DirectoryVanished(gone, "the file" if gone == path else "the directory")


class ExperimentWatch:
    """Whether the experiment directory is still the one the run started in."""

    def __init__(self, experiment_dir: str) -> None:
        self.experiment_dir = experiment_dir
        info = os.stat(experiment_dir)
        self._identity = (info.st_dev, info.st_ino)

    def vanished(self) -> DirectoryVanished | None:
        try:
            info = os.stat(self.experiment_dir)
        except FileNotFoundError:
            return DirectoryVanished(self.experiment_dir)
        if (info.st_dev, info.st_ino) != self._identity:  # deleted, and made again since (a new trial's makedirs)
            return DirectoryVanished(self.experiment_dir)
        return None


def missing_results(trials: Iterable[Any], result_file: str) -> list[Any]:
    """The trials that reported results whose `result_file` is no longer in their directory."""
    return [t for t in trials if t.num_results and t.path and not os.path.exists(os.path.join(t.path, result_file))]
