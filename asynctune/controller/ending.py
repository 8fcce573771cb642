"""Whether, and why, the experiment ends before its searcher and scheduler are done.

One `Ending` per experiment, read by the controller's loop, every trial's task and the code
that ends trials: the reason to stop (a stopper, the time budget, fail_fast), the fatal error
`run()` raises at the end, and whether unfinished trials stay resumable (interrupted).
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import StateNotWritten, StorageFull

logger = logging.getLogger(__name__)


class Ending:
    """The first fatal error wins, else the first reason; setting either wakes the loop."""

    __slots__ = ("why", "fatal", "interrupted", "_experiment_dir", "_wakeup")

    def __init__(self, experiment_dir: str, wakeup: asyncio.Event) -> None:
        self.why: str | None = None  # why the experiment is ending early (experiment.json's "stopping")
        self.fatal: BaseException | None = None  # raised by run() once everything is saved
        self.interrupted = False  # trials still running are killed as resumable, not finished
        self._experiment_dir, self._wakeup = experiment_dir, wakeup

    def stop(self, fatal: BaseException | None, why: str) -> None:
        """End the experiment early, with `fatal` raised at its end (None: a normal early end)."""
        if fatal is not None:
            if self.fatal is not None:
                return
            self.fatal = fatal
        elif self.why is not None:
            return
        self.why = why
        self._wakeup.set()

    def vanished(self, gone: BaseException) -> None:
        """The experiment's directory is gone, deleted or moved away (then it resumes where it is
        now): stop, keeping every unfinished trial resumable (none of them failed)."""
        self.interrupted = True
        self.stop(gone, str(gone))

    def disk_full(self, exc: StorageFull) -> None:
        """The disk is full: stop, keeping every unfinished trial resumable (none of them failed)."""
        if isinstance(exc, StateNotWritten):  # not space, but as resumable: its message says what
            self.interrupted = True
            return self.stop(exc, str(exc))
        if self.fatal is None:
            logger.warning("disk full writing %s: stopping the experiment", exc.path)
        self.interrupted = True
        self.stop(StorageFull(exc.path, self._experiment_dir), f"no space left on device ({exc.path})")
