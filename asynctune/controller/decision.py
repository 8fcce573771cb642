"""Settling the one decision on a result from everything that has a say in it."""

from __future__ import annotations

from ..errors import AsynctuneError
from ..core.trial import CONTINUE, PAUSE, STOP, Decision, Mutate


def settle(by_scheduler: object, *, stop: bool, pause: bool, owner: str) -> Decision | Mutate:
    """The decision sent to the worker, by precedence:

    1. STOP when anything asks to stop: the experiment is ending, the stopper's criterion is
       met, or a scheduler called `stop_trial` on this trial;
    2. the scheduler's own decision (PAUSE, STOP or Mutate) when it is not CONTINUE;
    3. PAUSE when a scheduler called `pause_trial` on this trial;
    4. CONTINUE.
    """
    if by_scheduler.__class__ is not Decision and not isinstance(by_scheduler, Mutate):
        raise AsynctuneError(f"{owner}.on_trial_result returned {by_scheduler!r}, not a Decision or Mutate")
    if stop:
        return STOP
    if by_scheduler is not CONTINUE:
        return by_scheduler  # type: ignore[return-value]
    return PAUSE if pause else CONTINUE
