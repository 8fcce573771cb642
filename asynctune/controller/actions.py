"""What a scheduler does to trials, recorded when it asks and applied after its hook returns.

`TrialActions` is the `TrialControl` a scheduler gets: `stop_trial`, `pause_trial` and
`resume_trial` only queue the action. The controller calls `apply()` right after every
scheduler hook (and whenever its loop wakes, for coroutine schedulers acting between hooks),
so no scheduler code ever runs inside another of its own hooks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .runtime import TrialRuntime
from ..core.trial import Status, Trial


class TrialActions:
    """The queue of actions on trials (a TrialControl; see algorithms/base.py)."""

    def __init__(self, trials: Sequence[Trial], wakeup: asyncio.Event) -> None:
        self._trials, self._wakeup = trials, wakeup
        self._queue: deque[tuple[str, Trial, dict[str, Any] | None, str | None]] = deque()

    @property
    def trials(self) -> Sequence[Trial]:
        return self._trials

    def stop_trial(self, trial: Trial) -> None:
        self._record("stop", trial)

    def pause_trial(self, trial: Trial) -> None:
        self._record("pause", trial)

    def resume_trial(self, trial: Trial, *, config: dict[str, Any] | None = None,
                     checkpoint: str | None = None) -> None:
        self._record("resume", trial, config, checkpoint)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def clear(self) -> None:
        self._queue.clear()

    def apply(self, runtime_of: Callable[[Trial], TrialRuntime], *, finish: Callable[[TrialRuntime], None],
              resume: Callable[[TrialRuntime, dict[str, Any] | None, str | None], None],
              request_resume: Callable[[TrialRuntime, dict[str, Any] | None, str | None], None]) -> None:
        """Apply the queued actions in order; hooks they reach may queue more, applied here too.

        A running trial gets a request, in force at its next result; a waiting one is finished
        or resumed at once. Actions that no longer fit the trial's state do nothing."""
        while self._queue:
            kind, trial, config, checkpoint = self._queue.popleft()
            runtime = runtime_of(trial)
            if trial.status is Status.RUNNING:
                if kind == "stop":
                    runtime.stop_requested = True
                elif kind == "pause":
                    runtime.pause_requested = True
                else:  # its pause may be in flight (decided but not yet done): resume once it lands
                    request_resume(runtime, config, checkpoint)
            elif kind == "stop" and trial.status in (Status.PENDING, Status.PAUSED):
                finish(runtime)
            elif kind == "resume" and trial.status is Status.PAUSED:
                resume(runtime, config, checkpoint)

    def _record(self, kind: str, trial: Trial, config: dict[str, Any] | None = None,
                checkpoint: str | None = None) -> None:
        self._queue.append((kind, trial, config, checkpoint))
        self._wakeup.set()  # a coroutine scheduler may act between hooks: the loop applies it then
