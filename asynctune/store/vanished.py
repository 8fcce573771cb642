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
whose results are gone are marked ERROR, so none of them is ever the best. The experiment's own
directory gone (deleted, or moved away with `mv`: the driver cannot tell) ends it as an
interruption instead: what the driver still writes through open files (the journal, results)
lands in the moved directory, so no trial is failed for a write into the old place, none is
marked as having lost its results, and no trial directory is made again there.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import IO, Any

from ..errors import AsynctuneError


class DirectoryVanished(AsynctuneError, OSError):
    """A directory of a running experiment (a trial's, or the experiment's own) was deleted (the
    experiment's own may have been moved: `experiment=True`).

    Attributes:
        path: What disappeared.
    """

    def __init__(self, path: str, what: str = "the directory", *, experiment: bool = False) -> None:
        if experiment:  # the driver cannot tell its directory deleted from one moved away
            message = (f"the directory {path} was deleted or moved while the experiment ran: the experiment ended "
                       "(moved, it resumes where it is now: asynctune resume <its new place>)")
        else:
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
            return DirectoryVanished(self.experiment_dir, experiment=True)
        if (info.st_dev, info.st_ino) != self._identity:  # deleted or moved, and made again since
            return DirectoryVanished(self.experiment_dir, experiment=True)
        return None


def missing_results(trials: Iterable[Any], result_file: str) -> list[Any]:
    """The trials that reported results whose `result_file` is no longer in their directory."""
    return [t for t in trials if t.num_results and t.path and not os.path.exists(os.path.join(t.path, result_file))]
