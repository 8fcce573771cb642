"""Where an experiment's state goes: each trial change to the journal at once, a snapshot of
the whole experiment (experiment.json) soon after, and the searcher's pickle."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..algorithms.base import Searcher
from ..errors import StateNotWritten, StorageFull, is_disk_full
from .private_files import open_private
from .journal import JournalWriter, Op
from .layout import EXPERIMENT_FILE, JOURNAL_FILE, SEARCHER_STATE_FILE, write_snapshot_atomic
from .signing import sign
from .vanished import ExperimentWatch
from .format import to_disk
from ..core.trial import Trial

if TYPE_CHECKING:
    from ..options import ExperimentSpec

logger = logging.getLogger(__name__)

_SAVE_INTERVAL_S = 1.0
_SAVE_COST_SHARE = 20  # at most 1/20 of the time goes to writing experiment.json
RESERVE_FILE = ".reserve"
_MIN_RESERVE_BYTES = 256 * 1024


class StateWriter:
    """Journal lines now, the snapshot at most once per second while anything changes (less
    often once writing it takes more than 1/20 of that).

    A write that fails for lack of space goes to `on_full` (the controller stops, resumable)
    instead of raising where the change happened. So that experiment.json can still be saved
    then, a `.reserve` file holds room for twice the snapshot, released just before the last save.

    `batched` (a simulated run, recording.RECORDINGS): journal lines are flushed once a second,
    and the snapshot and the searcher's state are written once, at the end (a snapshot costs
    time in proportion to the trials, and a simulation makes thousands a second).
    `journal=False` (a consolidated simulation, never resumed): no journal at all."""

    def __init__(self, experiment_dir: str, snapshot: Callable[[], dict[str, Any]],
                 on_full: Callable[[StorageFull], None], *, batched: bool = False, journal: bool = True,
                 watch: ExperimentWatch | None = None) -> None:
        self.experiment_dir = experiment_dir
        self._snapshot, self._on_full = snapshot, on_full
        self._batched, self._with_journal = batched, journal
        self._journal: JournalWriter | None = None
        self._dirty = asyncio.Event()
        self._reserved = 0
        self._searcher: Searcher | None = None  # batched: saved by the last save()
        self._searcher_unsaveable = False  # its save() failed once (warned): not tried again
        self.saved: dict[str, Any] | None = None  # experiment.json as last written, less its trial table
        self._watch = watch  # the run's directory: saves go to no other made since at its path

    def open(self) -> None:
        """Start the journal and the reserve; raises StorageFull on a disk already full."""
        try:
            self._reserve(_MIN_RESERVE_BYTES)
            if self._with_journal:
                self._journal = JournalWriter(self.experiment_dir, flush_each=not self._batched)
        except OSError as exc:
            if is_disk_full(exc):
                path = os.fsdecode(exc.filename) if exc.filename else os.path.join(self.experiment_dir, RESERVE_FILE)
                raise StorageFull(path, self.experiment_dir) from exc
            raise

    def close(self) -> None:
        self._on_journal(JournalWriter.close)

    def _on_journal(self, action: Callable[[JournalWriter], None]) -> None:
        if self._journal is not None:
            try:
                action(self._journal)
            except OSError as exc:
                self._failed(exc, JOURNAL_FILE)

    def release_reserve(self) -> None:
        try:
            os.unlink(os.path.join(self.experiment_dir, RESERVE_FILE))
        except OSError:
            pass
        self._reserved = min(self._reserved, 0)

    def _reserve(self, size: int) -> None:
        """Hold `size` bytes in .reserve; where that is refused other than for space (a file-size
        limit, a file system without fallocate), go on without one."""
        if self._reserved < 0 or size <= self._reserved:
            return
        try:
            with open_private(os.path.join(self.experiment_dir, RESERVE_FILE), "ab") as f:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(f.fileno(), 0, size)
                else:  # pragma: no cover - macOS: real bytes, not a sparse file
                    f.write(bytes(size - f.tell()))
        except OSError as exc:
            if is_disk_full(exc):
                raise
            logger.info("no room kept for the final save in %s: %s", self.experiment_dir, exc)
            self.release_reserve()
            self._reserved = -1  # do not try again
            return
        self._reserved = size

    def _failed(self, exc: OSError, name: str) -> None:
        path = os.path.join(self.experiment_dir, name)
        if is_disk_full(exc):
            self._on_full(StorageFull(path, self.experiment_dir))
        elif name == JOURNAL_FILE:  # the resume's record of every trial: the run must not go on without it
            self._on_full(StateNotWritten(path, self.experiment_dir, exc))
        else:
            logger.error("could not write %s: %s", path, exc)

    def changed(self, trial: Trial | None = None, *, event: str = "status") -> None:
        """Note a change: the trial's new state goes to the journal now (`event`: why it
        changed, a journal.Op), the snapshot soon."""
        self._dirty.set()
        if trial is not None and self._journal is not None:
            try:
                self._journal.write(Op(event), trial)
            except OSError as exc:
                self._failed(exc, JOURNAL_FILE)

    def _gone(self) -> bool:
        """Its directory was deleted or moved away (the controller ends the run): a directory made
        since where it was, another run's perhaps, is never written over."""
        return self._watch is not None and self._watch.vanished() is not None

    def save(self) -> None:
        if self._gone():
            return
        if self._searcher is not None:
            searcher, self._searcher = self._searcher, None
            try:
                self._save_searcher(searcher)
            except Exception:  # noqa: BLE001  as a failing save hook is, when it runs at once
                logger.exception("could not save the searcher's state")
        path = os.path.join(self.experiment_dir, EXPERIMENT_FILE)
        snapshot = to_disk(self._snapshot(), self.experiment_dir)  # versioned, paths relative
        try:
            write_snapshot_atomic(path, snapshot)  # a line per trial: json's C encoder, no indenting
            self.saved = {k: v for k, v in snapshot.items() if k != "trials"}  # the Trial objects hold those
            if self._reserved > 0:  # keep room for twice the snapshot, as it grows
                self._reserve(max(_MIN_RESERVE_BYTES, 2 * os.path.getsize(path)))
        except OSError as exc:
            if is_disk_full(exc):
                self._failed(exc, EXPERIMENT_FILE)
            elif os.path.isdir(self.experiment_dir):  # else deleted under the run: the controller ends it
                logger.error("could not save %s: %s", EXPERIMENT_FILE, exc)

    async def save_periodically(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            started = time.perf_counter()
            if self._batched:
                self._on_journal(JournalWriter.flush)
            else:
                self.save()
            # The snapshot grows with the trials (tens of ms at thousands): it never takes more
            # than 1/_SAVE_COST_SHARE of the loop's time. The journal has every change meanwhile.
            await asyncio.sleep(max(_SAVE_INTERVAL_S, _SAVE_COST_SHARE * (time.perf_counter() - started)))

    def save_searcher(self, searcher: Searcher) -> None:
        if self._batched:
            self._searcher = searcher  # written by the last save()
            return
        self._save_searcher(searcher)

    def _save_searcher(self, searcher: Searcher) -> None:
        if self._searcher_unsaveable or self._gone():
            return
        path = os.path.join(self.experiment_dir, SEARCHER_STATE_FILE)
        unsigned = path + ".unsigned.tmp"
        try:
            searcher.save(unsigned)
            with open(unsigned, "rb") as f:
                state = f.read()
            # Signed into a new file (resume checks it before restore() unpickles): rewriting the
            # one save() wrote would make ext4 flush it to disk at the rename, milliseconds each.
            with open_private(path + ".tmp", "wb") as f:
                f.write(sign(state))
            os.unlink(unsigned)
            os.replace(path + ".tmp", path)
        except OSError as exc:
            if not is_disk_full(exc):
                if not os.path.isdir(self.experiment_dir):  # deleted under the run: the controller ends it
                    return
                raise
            self._failed(exc, SEARCHER_STATE_FILE)
        except Exception as exc:  # noqa: BLE001  state that cannot be pickled (a lock, a connection)
            self._searcher_unsaveable = True
            for stale in (unsigned, path + ".tmp", path):  # no half-written file, no older state instead
                try:
                    os.unlink(stale)
                except FileNotFoundError:
                    pass
            logger.warning("%s cannot be saved (%s: %s); a resume rebuilds it by replaying the recorded "
                           "trials to it", type(searcher).__name__, type(exc).__name__, exc)


def experiment_snapshot(*, spec: ExperimentSpec, status: str, started_at: float, time_used_s: float,
                        searcher: Any, scheduler: Any, stopping: str | None, trials: Sequence[Trial]) -> dict[str, Any]:
    """The experiment as experiment.json keeps it: its status, options and trial table."""
    options = spec.options
    return {
        "name": spec.name, "status": status, "metric": options.metric, "mode": options.mode,
        "trainable": spec.trainable_name, "start_time": started_at, "time_used_s": time_used_s,
        "time_budget_s": options.time_budget_s, "num_samples": options.num_samples, "seed": options.seed,
        "searcher": type(searcher).__name__, "scheduler": type(scheduler).__name__,
        "stopping": stopping, "trials": [t.summary() for t in trials],
    }
