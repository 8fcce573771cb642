"""Where an experiment's state goes: each trial change to the journal at once, a snapshot of
the whole experiment (experiment.json) soon after, and the searcher's pickle."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .algorithms.base import Searcher
from .safe_files import PRIVATE_FILE_MODE
from .storage import EXPERIMENT_FILE, SEARCHER_STATE_FILE, Journal, write_json_atomic
from .trial import Trial

if TYPE_CHECKING:
    from .controller import Controller

logger = logging.getLogger(__name__)

_SAVE_INTERVAL_S = 1.0


class StateWriter:
    """Journal lines now, the snapshot at most once per second while anything changes."""

    def __init__(self, experiment_dir: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.experiment_dir = experiment_dir
        self._snapshot = snapshot
        self._journal: Journal | None = None
        self._dirty = asyncio.Event()

    def open(self) -> None:
        self._journal = Journal(self.experiment_dir)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    def changed(self, trial: Trial | None = None, *, event: str = "status") -> None:
        """Note a change: the trial's new state goes to the journal now, the snapshot soon."""
        self._dirty.set()
        if trial is not None and self._journal is not None:
            self._journal.write({
                "event": event, "time": time.time(), "trial_id": trial.trial_id, "index": trial.index,
                "status": trial.status.value, "config": trial.config, "resources": trial.resources,
                "checkpoint": trial.checkpoint, "restore_checkpoint": trial.restore_checkpoint,
                "num_failures": trial.num_failures, "error": trial.error,
            })

    def save(self) -> None:
        try:
            write_json_atomic(os.path.join(self.experiment_dir, EXPERIMENT_FILE), self._snapshot())
        except OSError as exc:
            logger.error("could not save %s: %s", EXPERIMENT_FILE, exc)

    async def save_periodically(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self.save()
            await asyncio.sleep(_SAVE_INTERVAL_S)

    def save_searcher(self, searcher: Searcher) -> None:
        path = os.path.join(self.experiment_dir, SEARCHER_STATE_FILE)
        searcher.save(path + ".tmp")
        os.chmod(path + ".tmp", PRIVATE_FILE_MODE)
        os.replace(path + ".tmp", path)


def experiment_snapshot(controller: Controller) -> dict[str, Any]:
    """The experiment as experiment.json keeps it: its status, options and trial table."""
    options, spec = controller.options, controller.spec
    return {
        "name": spec.name, "status": controller.status, "metric": options.metric, "mode": options.mode,
        "trainable": spec.trainable_name, "start_time": controller.start_time,
        "time_used_s": controller.time_used_s + (controller.executor.now() - controller.start_time),
        "time_budget_s": options.time_budget_s, "num_samples": options.num_samples, "seed": options.seed,
        "searcher": type(controller.searcher).__name__, "scheduler": type(controller.scheduler).__name__,
        "stopping": controller.stopping, "trials": [t.summary() for t in controller.trials],
    }
