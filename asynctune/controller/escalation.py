"""A trial told to stop or pause must return within a grace period, or its worker is ended.

The decision travels to the trial, whose report() raises to unwind it; a trainable that
catches that, ignores it in a `finally:` that blocks, or is stuck in C code never returns,
and would keep its place for ever. `StopEscalation.arm` starts the grace period
(run(stop_grace_s=...)) when the decision is sent; if the attempt has not ended by then, its
process tree is ended (SIGTERM, then SIGKILL after the executor's kill_grace_s) and the
decision stands: the driver ends the attempt as the decision said (driver.py, `_on_end`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..core.trial import Decision
from .runtime import TrialRuntime

logger = logging.getLogger(__name__)


class StopEscalation:
    """The grace periods running, one per trial told to stop or pause."""

    def __init__(self, grace_s: float, kill: Callable[[TrialRuntime], None]) -> None:
        self._grace_s = grace_s
        self._kill = kill
        self._timers: dict[TrialRuntime, asyncio.TimerHandle] = {}

    def arm(self, runtime: TrialRuntime, decision: Decision, reads_it_in_s: float = 0.0) -> None:
        """`decision` (STOP or PAUSE) was just sent to the trial's attempt, which reads it in
        about `reads_it_in_s` (a pipelined trial that runs a step first)."""
        if runtime in self._timers:
            return
        self._timers[runtime] = asyncio.get_running_loop().call_later(
            self._grace_s + reads_it_in_s, self._overdue, runtime, runtime.run, decision, reads_it_in_s)

    def disarm(self, runtime: TrialRuntime) -> None:
        """The attempt ended (however): its grace period, if any, is over."""
        timer = self._timers.pop(runtime, None)
        if timer is not None:
            timer.cancel()

    def _overdue(self, runtime: TrialRuntime, run: object, decision: Decision, reads_it_in_s: float) -> None:
        self._timers.pop(runtime, None)
        if runtime.run is not run or run is None or runtime.killing:
            return  # it ended meanwhile, or is being ended already
        logger.warning("trial %s was told to %s %.3gs ago and has not returned: ending its worker "
                       "(SIGTERM, then SIGKILL); it ends %s", runtime.trial.trial_id, decision.value,
                       self._grace_s + reads_it_in_s,
                       "PAUSED at its last checkpoint" if decision is Decision.PAUSE else "TERMINATED")
        runtime.overdue = decision
        runtime.killing = True
        self._kill(runtime)
