"""Rebuilding a fresh scheduler's state on resume, by replaying what is on disk to it."""

from __future__ import annotations

from collections.abc import Sequence

from ..algorithms.base import Scheduler, resolve
from ..store.recovery import recorded_history
from ..core.trial import Status, Trial


async def replay_history(scheduler: Scheduler, trials: Sequence[Trial]) -> None:
    """Show the scheduler every trial and every recorded result again, in the order they came.

    Its decisions and actions are the caller's to ignore (what happened is on disk). This needs
    no pickled scheduler, so coroutine schedulers resume too."""
    for trial in sorted(trials, key=lambda t: t.index):
        scheduler.on_trial_add(trial)
    final = {t: t.last_result for t in trials}
    for trial, result in recorded_history(list(trials)):
        trial.last_result = result
        await resolve(scheduler.on_trial_result(trial, result))
    for trial in trials:
        trial.last_result = final[trial]
        if trial.status is Status.TERMINATED:
            scheduler.on_trial_complete(trial, trial.last_result)
        elif trial.status is Status.ERROR:
            scheduler.on_trial_error(trial)
