"""The callback interface every logger uses (console, TensorBoard, CSV, MLflow, ...)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..core.trial import Trial

logger = logging.getLogger(__name__)


class Callback:
    """Hooks called by the controller as an experiment runs. Override the ones you need.

    Callbacks run on the event loop: keep them quick, or hand work to a thread.

    Example:
        >>> class PrintBest(Callback):
        ...     def on_trial_result(self, trial, result):
        ...         print(trial.trial_id, result["loss"])
    """

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None: ...

    def on_trial_start(self, trial: Trial) -> None: ...

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trial: Trial, checkpoint: str) -> None: ...

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        """A scheduler decided something other than CONTINUE (STOP, PAUSE, MUTATE, PROMOTE)."""

    def on_trial_complete(self, trial: Trial) -> None: ...

    def on_trial_error(self, trial: Trial) -> None: ...

    def on_tick(self, trials: Sequence[Trial]) -> None:
        """Called about twice a second, e.g. to refresh a live view."""

    def on_experiment_end(self, trials: Sequence[Trial]) -> None: ...


class CallbackList(Callback):
    """Calls every callback; one that raises is logged and does not stop the experiment."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise ValueError(f"callbacks must be asynctune.Callback instances, got {callback!r}")
        self.callbacks = list(callbacks)
        self._failures: Counter[tuple[str, str]] = Counter()  # (callback class, method) -> failures

    def _call(self, name: str, *args: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, name)(*args)
            except Exception:
                self._failed(callback, name)

    def _failed(self, callback: Callback, name: str) -> None:
        """Log a hook's first failure with its traceback; count the others (one per result would
        bury the output), and say how many there were at the end."""
        key = (type(callback).__name__, name)
        self._failures[key] += 1
        if self._failures[key] == 1:
            logger.exception("callback %s.%s failed (its later failures are counted, not shown)", *key)
        else:
            logger.debug("callback %s.%s failed again", *key, exc_info=True)

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self._call("on_experiment_start", experiment_dir, trials)

    def on_trial_start(self, trial: Trial) -> None:
        self._call("on_trial_start", trial)

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None:
        for callback in self.callbacks:  # the hot path: no getattr per call
            try:
                callback.on_trial_result(trial, result)
            except Exception:
                self._failed(callback, "on_trial_result")

    def on_checkpoint(self, trial: Trial, checkpoint: str) -> None:
        self._call("on_checkpoint", trial, checkpoint)

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        self._call("on_trial_decision", trial, decision, detail)

    def on_trial_complete(self, trial: Trial) -> None:
        self._call("on_trial_complete", trial)

    def on_trial_error(self, trial: Trial) -> None:
        self._call("on_trial_error", trial)

    def on_tick(self, trials: Sequence[Trial]) -> None:
        self._call("on_tick", trials)

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        self._call("on_experiment_end", trials)
        for (owner, name), count in self._failures.items():
            if count > 1:
                logger.warning("callback %s.%s failed %d times in all (the first traceback is above)", owner, name, count)
