"""Rebuilding a fresh scheduler's and stopper's state on resume, by replaying what is on disk to it; and a
searcher's, where it could not be saved."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..algorithms.base import FINISHED, Scheduler, Searcher, resolve
from ..core.stopper import Stopper, ThresholdStopper
from ..store.recovery import recorded_history
from ..core.trial import Status, Trial

logger = logging.getLogger(__name__)


async def replay_history(scheduler: Scheduler, trials: Sequence[Trial], stopper: Stopper | None = None) -> None:
    """Show the scheduler, and a stopper that keeps state, every trial and every recorded
    result again, in the order they came.

    Their decisions and actions are the caller's to ignore (what happened is on disk). This
    needs no pickled scheduler, so coroutine schedulers resume too; a stopper that watches for a
    plateau goes on with the history it had, as if the driver had not stopped."""
    if isinstance(stopper, ThresholdStopper):  # it keeps no state
        stopper = None
    for trial in sorted(trials, key=lambda t: t.index):
        scheduler.on_trial_add(trial)
    final = {t: t.last_result for t in trials}
    history = list(recorded_history(list(trials)))
    last_of = {trial: position for position, (trial, _) in enumerate(history)}
    for position, (trial, result) in enumerate(history):
        trial.last_result = result
        # An ended trial's last result ended it, as the scheduler was told then (PBT: no exploit).
        trial.ending = trial.status in (Status.FINISHED, Status.EARLY_STOPPED) and last_of[trial] == position
        await resolve(scheduler.on_trial_result(trial, result))
        if stopper is not None:
            stopper(trial.trial_id, result)
    for trial in trials:
        trial.last_result = final[trial]
        trial.ending = False
        if trial.status in (Status.FINISHED, Status.EARLY_STOPPED):
            scheduler.on_trial_complete(trial, trial.last_result)
        elif trial.status is Status.ERROR:
            scheduler.on_trial_error(trial)


def replay_searcher(searcher: Searcher, trials: Sequence[Trial]) -> None:
    """Rebuild a searcher that could not be saved, or a `replayable` one: ask it for every recorded trial again, under
    the same id, and tell it each recorded result and end, in the order they came.

    A searcher whose suggestions follow from its seed and what it was told comes back in the
    state it had; one that draws otherwise is told the recorded results of its new suggestions,
    and a warning says how many differed."""
    ordered = sorted(trials, key=lambda t: t.index)
    if not ordered:
        return
    history = list(recorded_history(list(ordered)))
    last_of = {trial.trial_id: position for position, (trial, _) in enumerate(history)}
    suggested, differed = 0, 0

    def suggest_through(index: int) -> None:
        nonlocal suggested, differed
        while suggested < len(ordered) and ordered[suggested].index <= index:
            trial = ordered[suggested]
            suggested += 1
            config = searcher.suggest(trial.trial_id)
            if config is None or config is FINISHED or config != trial.config:
                differed += 1

    for position, (trial, result) in enumerate(history):
        suggest_through(trial.index)
        searcher.on_trial_result(trial.trial_id, result)
        if last_of[trial.trial_id] == position:
            _tell_end(searcher, trial, result)
    suggest_through(ordered[-1].index)
    for trial in ordered:
        if trial.trial_id not in last_of:  # ended before its first result (an error at setup)
            _tell_end(searcher, trial, None)
    if searcher.replayable and (not differed or getattr(searcher, "seed", None) is None):
        # Its state is never behind: rebuilt exactly (unseeded, its draws were never repeatable).
        logger.info("%s rebuilt by replaying %d trial(s)", type(searcher).__name__, len(ordered))
        return
    logger.warning("%s had no saved state; rebuilt by replaying %d trial(s)%s", type(searcher).__name__,
                   len(ordered), f": {differed} of its suggestions differed from the recorded configs, so it "
                   "may propose one again" if differed else "")


def _tell_end(searcher: Searcher, trial: Trial, result: dict | None) -> None:
    if trial.status is Status.ERROR:
        searcher.on_trial_complete(trial.trial_id, result, error=True)
    elif trial.status is Status.EARLY_STOPPED:
        searcher.on_trial_pruned(trial.trial_id, result)
    elif trial.status is Status.FINISHED:
        searcher.on_trial_complete(trial.trial_id, result)
