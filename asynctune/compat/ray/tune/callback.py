"""Ray's `tune.Callback` hook signatures, driven by an asynctune Callback that adapts each call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asynctune as _at

from ._results import ray_terminated
from ._session import Checkpoint


class Callback:
    """Ray's experiment callback: override the hooks you need, with Ray's signatures.

    `trials` and `trial` are `RayTrial`s: asynctune's trials (trial_id, config, last_result,
    path) with Ray's status words and checkpoint; `iteration` counts the controller's ticks.

    Example:
        >>> class PrintLoss(tune.Callback):
        ...     def on_trial_result(self, iteration, trials, trial, result, **info):
        ...         print(trial.trial_id, result["loss"])
    """

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None: ...

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None: ...

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None: ...

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None: ...

    def on_trial_restore(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None: ...

    def on_trial_save(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None: ...

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None: ...

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None: ...

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None: ...

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None: ...

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Checkpoint,
                      **info: Any) -> None: ...

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None: ...

    def get_state(self) -> dict[str, Any] | None:
        return None

    def set_state(self, state: dict[str, Any]) -> None: ...


class RayTrial:
    """An asynctune Trial as a Ray callback sees it: Ray's status words (TERMINATED for a trial
    that ended FINISHED or EARLY_STOPPED), its checkpoint as a `tune.Checkpoint`; every other
    attribute (trial_id, config, last_result, path, local_path, error, ...) is the trial's own."""

    PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"

    def __init__(self, trial: Any) -> None:
        self._trial = trial

    def __getattr__(self, name: str) -> Any:
        if name == "_trial":  # not set yet (unpickling): never look it up on itself
            raise AttributeError(name)
        return getattr(self._trial, name)

    @property
    def status(self) -> str:
        status = self._trial.status
        return self.TERMINATED if ray_terminated(status) else status.value

    @property
    def checkpoint(self) -> Checkpoint | None:
        return Checkpoint(self._trial.checkpoint) if self._trial.checkpoint else None

    def __str__(self) -> str:
        return self._trial.trial_id

    def __repr__(self) -> str:
        return f"RayTrial({self._trial.trial_id}, status={self.status})"


class RayCallbackAdapter(_at.Callback):
    """Calls a Ray-style callback from asynctune's hooks."""

    def __init__(self, callback: Callback, *, stop: Any = None, num_samples: int | None = None) -> None:
        self.callback = callback
        self.stop, self.num_samples = stop, num_samples
        self.iteration = 0
        self.trials: list[Any] = []
        self._shown: dict[str, int] = {}  # the newest training_iteration shown, per trial
        self._held: dict[str, str] = {}  # a checkpoint whose result is not shown yet
        self._views: dict[str, RayTrial] = {}  # one per trial, so callbacks may key dicts by trial

    def _view(self, trial: Any) -> RayTrial:
        view = self._views.get(trial.trial_id)
        if view is None or view._trial is not trial:
            view = self._views[trial.trial_id] = RayTrial(trial)
        return view

    def _all(self, trials: Sequence[Any] | None = None) -> list[RayTrial]:
        return [self._view(trial) for trial in (self.trials if trials is None else trials)]

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Any]) -> None:
        self.trials = trials  # type: ignore[assignment]  # the controller's own list: it grows as trials are added
        self.callback.setup(stop=self.stop, num_samples=self.num_samples, total_num_samples=self.num_samples)

    def on_tick(self, trials: Sequence[Any]) -> None:
        views = self._all(trials)
        self.callback.on_step_begin(self.iteration, views)
        self.callback.on_step_end(self.iteration, views)
        self.iteration += 1

    def on_trial_start(self, trial: Any) -> None:
        self.callback.on_trial_start(self.iteration, self._all(), self._view(trial))

    def on_trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        ray_result = {"done": False, **result, "config": trial.config}  # the keys Ray's results carry
        self.callback.on_trial_result(self.iteration, self._all(), self._view(trial), ray_result)
        self._shown[trial.trial_id] = result.get("training_iteration", 0)
        checkpoint = self._held.pop(trial.trial_id, None)
        if checkpoint is not None:
            self._checkpoint(trial, checkpoint)

    def on_checkpoint(self, trial: Any, checkpoint: str) -> None:
        # asynctune records a result's checkpoint before showing the result; Ray shows the result
        # first: hold the checkpoint until its result has been shown.
        iteration = (trial.last_result or {}).get("training_iteration", 0)
        if trial.checkpoint_iteration == iteration and iteration > self._shown.get(trial.trial_id, 0):
            self._held[trial.trial_id] = checkpoint
        else:
            self._checkpoint(trial, checkpoint)

    def _checkpoint(self, trial: Any, checkpoint: str) -> None:
        views, view = self._all(), self._view(trial)
        self.callback.on_checkpoint(self.iteration, views, view, Checkpoint(checkpoint))
        self.callback.on_trial_save(self.iteration, views, view)

    def on_trial_complete(self, trial: Any) -> None:
        self.callback.on_trial_complete(self.iteration, self._all(), self._view(trial))

    def on_trial_error(self, trial: Any) -> None:
        self.callback.on_trial_error(self.iteration, self._all(), self._view(trial))

    def on_experiment_end(self, trials: Sequence[Any]) -> None:
        self.callback.on_experiment_end(self._all(trials))


def adapt_callbacks(callbacks: Sequence[Any] | None, *, stop: Any, num_samples: int) -> list[_at.Callback]:
    """RunConfig's callbacks as asynctune Callbacks (asynctune's own pass through)."""
    adapted: list[_at.Callback] = []
    for callback in callbacks or ():
        if isinstance(callback, _at.Callback):
            adapted.append(callback)
        elif isinstance(callback, Callback):
            adapted.append(RayCallbackAdapter(callback, stop=stop, num_samples=num_samples))
        else:
            raise ValueError(f"RunConfig: callbacks must be tune.Callback instances, got {callback!r}")
    return adapted
