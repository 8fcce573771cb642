"""The default scheduler: run trials in the order they were created, never stop one early."""

from __future__ import annotations

from typing import Any

from ...core.trial import CONTINUE, Decision, Trial
from ..base import Scheduler


class FIFOScheduler(Scheduler):
    """First in, first out; every trial runs until its stop criterion or its own end.

    Example:
        >>> run(train, config=space, scheduler=FIFOScheduler())
    """

    multi_objective = True  # it ranks nothing, so any number of metrics will do

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> Decision:
        return CONTINUE

    def synchronous_results(self, trial: Trial) -> frozenset[int]:
        return frozenset()  # it always continues: no result need wait for its answer
