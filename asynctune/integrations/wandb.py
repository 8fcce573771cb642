"""Weights & Biases: one W&B run per trial, from the driver (`WandbLoggerCallback`) or the trial (`setup_wandb`).

`pip install 'asynctune[wandb]'`. Online, log in first (`wandb login`, or `WANDB_API_KEY`);
offline (`mode="offline"` or `WANDB_MODE=offline`), runs are written to disk for `wandb sync`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..reporting.callback import Callback
from ..core.trial import Status, Trial
from ._common import (
    RESULT_FIELDS_NOT_LOGGED, TrackerThread, experiment_name_of, numeric_metrics, require, trial_params,
)

STATUS_KEY = "asynctune_status"  # in each run's summary: the trial's status, as ExperimentAnalysis has it
TRIAL_ID_KEY = "asynctune_trial_id"  # in each run's config
_MODES = ("online", "offline", "disabled", "shared")
_EXIT_CODE = {Status.FINISHED: 0, Status.EARLY_STOPPED: 0, Status.ERROR: 1}

logger = logging.getLogger(__name__)


def run_id(experiment_dir: str, trial_id: str, side: str = "driver") -> str:
    """The W&B run id of a trial: the same every time the experiment runs, so a resume continues it."""
    digest = hashlib.sha256(f"{os.path.abspath(experiment_dir)}\0{side}".encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', trial_id)[:40]}-{digest}"


class WandbLoggerCallback(Callback):
    """Logs every trial as a W&B run: its config, each reported metric at its step, its status.

    The runs of one experiment share a W&B group named after it (its directory's name). Each
    run is named after its trial and has `asynctune_trial_id` in its config; its summary's
    `asynctune_status` is the trial's status as `ExperimentAnalysis` has it, and the run exits
    with code 0 for a TERMINATED trial, 1 for an ERROR (W&B shows them finished and failed).
    A trial the driver leaves unfinished is marked preempting; `asynctune.resume` continues the
    same runs (their ids are derived from the experiment and the trial). All W&B calls happen on
    one I/O thread, so a slow network never holds up the experiment.

    Example:
        >>> from asynctune.integrations.wandb import WandbLoggerCallback
        >>> asynctune.run(train, config=space, metric="loss", mode="min",
        ...               callbacks=[WandbLoggerCallback(project="mnist", mode="offline")])
        $ wandb sync ~/asynctune_results/<experiment>/wandb/offline-run-*

    Args:
        project: The W&B project.
        group: The runs' group; None: the asynctune experiment's name.
        entity: The W&B team or user; None: your default.
        mode: "online", "offline", "disabled"; None: W&B's own default (`WANDB_MODE`, `wandb offline`).
        dir: Where W&B writes its files; None: the experiment's directory.
        exclude: Result keys not logged as metrics.
        **init_kwargs: Passed on to `wandb.init` (e.g. `tags=`, `notes=`).
    """

    def __init__(self, project: str = "asynctune", *, group: str | None = None, entity: str | None = None,
                 mode: str | None = None, dir: str | None = None,
                 exclude: Collection[str] = RESULT_FIELDS_NOT_LOGGED, **init_kwargs: Any) -> None:
        require("wandb", "wandb", "WandbLoggerCallback")
        for name, value in (("project", project), ("group", group), ("entity", entity), ("dir", dir)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"WandbLoggerCallback: {name} must be a non-empty string, got {name}={value!r}")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"WandbLoggerCallback: mode must be one of {_MODES} or None, got {mode=}")
        if isinstance(exclude, str) or not all(isinstance(k, str) for k in exclude):
            raise ValueError(f"WandbLoggerCallback: exclude must be a collection of result keys, got {exclude=}")
        per_trial = {"id", "name", "config", "resume", "reinit", "project", "group", "entity", "mode", "dir"}
        taken = per_trial & set(init_kwargs)
        if taken:
            raise ValueError(f"WandbLoggerCallback: {sorted(taken)} are set per trial by the callback; "
                             "pass project=, group=, entity=, mode=, dir= as its own arguments")
        self.project, self.group, self.entity, self.mode, self.dir = project, group, entity, mode, dir
        self.exclude = frozenset(exclude)
        self.init_kwargs = init_kwargs
        self._init_state()

    def _init_state(self) -> None:
        self._io = TrackerThread("wandb")
        self.experiment_dir: str | None = None
        self._runs: dict[str, Any] = {}  # trial id -> open wandb Run (touched on the I/O thread only)

    def __getstate__(self) -> dict[str, Any]:  # kept for resume: the settings, not the thread or runs
        keep = ("project", "group", "entity", "mode", "dir", "exclude", "init_kwargs")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    def flush(self) -> None:
        """Wait until everything received so far has been handed to W&B."""
        self._io.flush()

    # Callback (on the event loop: queue the work) ------------------------------------------------

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.experiment_dir = experiment_dir

    def on_trial_start(self, trial: Trial) -> None:
        self._io.submit(self._start_run, trial.trial_id, dict(trial.config))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None:
        step = int(result.get("training_iteration", trial.num_results))
        self._io.submit(self._log, trial.trial_id, numeric_metrics(result, self.exclude), step)

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        if decision == "PAUSE":
            self._io.submit(self._set_status, trial.trial_id, Status.PAUSED.value)

    def on_trial_complete(self, trial: Trial) -> None:
        self._io.submit(self._finish, trial.trial_id, trial.status.value, _EXIT_CODE[Status.FINISHED])

    def on_trial_error(self, trial: Trial) -> None:
        self._io.submit(self._finish, trial.trial_id, trial.status.value, _EXIT_CODE[Status.ERROR])

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        for trial in trials:  # the trials the driver leaves unfinished: their runs say so
            self._io.submit(self._finish, trial.trial_id, trial.status.value, _EXIT_CODE.get(trial.status))
        self._io.submit(self._written)
        self._io.close()

    # The I/O thread ------------------------------------------------------------------------------

    def _start_run(self, trial_id: str, config: dict[str, Any]) -> None:
        import wandb

        params = {**trial_params(config), TRIAL_ID_KEY: trial_id}
        run = self._runs.get(trial_id)
        if run is not None:  # restarted after a pause (or with PBT's new config): the run goes on
            run.config.update(params, allow_val_change=True)
        else:
            experiment_dir = self.experiment_dir or "."
            kwargs = dict(self.init_kwargs)
            # The driver's console is the experiment's, not any one trial's: W&B must not capture it.
            kwargs.setdefault("settings", wandb.Settings(console="off"))
            run = self._runs[trial_id] = wandb.init(
                project=self.project, group=self.group or experiment_name_of(experiment_dir), entity=self.entity,
                mode=self.mode, dir=self.dir or experiment_dir, name=trial_id, id=run_id(experiment_dir, trial_id),
                config=params, resume="allow", reinit="create_new", **kwargs)
        run.summary[STATUS_KEY] = Status.RUNNING.value

    def _log(self, trial_id: str, metrics: dict[str, float], step: int) -> None:
        if (run := self._runs.get(trial_id)) is not None and metrics:
            run.log(metrics, step=step)

    def _set_status(self, trial_id: str, status: str) -> None:
        if (run := self._runs.get(trial_id)) is not None:
            run.summary[STATUS_KEY] = status

    def _written(self) -> None:
        """Wait until W&B's service has written the runs: `finish()` returns before, so an
        offline run read when `run()` returns could lack its records (seen under load)."""
        import wandb

        if wandb.run is None:  # else the driver's own run (the user's) still needs the service
            _end_service(wandb)

    def _finish(self, trial_id: str, status: str, exit_code: int | None) -> None:
        run = self._runs.pop(trial_id, None)
        if run is None:
            return
        run.summary[STATUS_KEY] = status
        if exit_code is None:  # interrupted: W&B's state for a run that is to be resumed
            run.mark_preempting()
        run.finish(exit_code=exit_code or 0)


def setup_wandb(config: Mapping[str, Any] | None = None, *, project: str = "asynctune", group: str | None = None,
                mode: str | None = None, **init_kwargs: Any) -> Any:
    """Start (or continue) this trial's W&B run inside the trainable; returns the run.

    Log whatever the trial wants with it (`run.log({...})`, `wandb.watch(model)`), and end it
    with `run.finish()` or use it in a `with` block (which marks the run failed if the trial
    raises): asynctune ends the trial's child processes when it ends, W&B's service among them,
    and this waits until the service has written the run. The run is
    named after the trial, grouped under the experiment's name, holds the config, and writes its
    files into the trial's directory; a trial that runs again (after a pause, a retry or a
    resume) continues the same run. Use this or `WandbLoggerCallback` for a trial, not both
    (each makes its own run).

    Example:
        >>> def train(config):
        ...     with setup_wandb(config, project="mnist", mode="offline") as run:
        ...         for epoch in range(10):
        ...             run.log({"loss": loss}, step=epoch)
        ...             asynctune.report(loss=loss)

    Args:
        config: The run's config (None: only the trial id).
        project, group, mode: As for `WandbLoggerCallback`.
        **init_kwargs: Passed on to `wandb.init`.
    """
    wandb = require("wandb", "wandb", "setup_wandb")
    if mode is not None and mode not in _MODES:
        raise ValueError(f"setup_wandb: mode must be one of {_MODES} or None, got {mode=}")
    from ..worker.session import get_trial_dir, get_trial_id

    trial_id, trial_dir = get_trial_id(), get_trial_dir()
    experiment_dir = os.path.dirname(os.path.normpath(trial_dir))
    params = {**trial_params(config or {}), TRIAL_ID_KEY: trial_id}
    init_kwargs.setdefault("dir", trial_dir)
    # A worker process reused from an earlier trial: that trial's run ends here, and W&B's service
    # process starts anew (asynctune ends a worker's child processes, the service among them,
    # when its trial ends).
    if wandb.run is not None:
        try:
            wandb.run.finish()
        except Exception:  # its service is gone: what it had not written is lost with it
            logger.warning("setup_wandb: could not finish the previous trial's W&B run", exc_info=True)
    _end_service(wandb)
    run = wandb.init(project=project, group=group or experiment_name_of(experiment_dir), mode=mode, name=trial_id,
                     id=run_id(experiment_dir, trial_id, side="trainable"), config=params, resume="allow",
                     **init_kwargs)
    return TrialRun(run)


class TrialRun:
    """A `wandb.Run` (every attribute is the run's) whose `finish`, and the end of a `with` block,
    also wait until W&B's service has written everything: `run.finish()` alone returns before,
    and the service is ended with the trial."""

    def __init__(self, run: Any) -> None:
        self.__dict__["run"] = run

    def __getattr__(self, name: str) -> Any:
        return getattr(self.run, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.run, name, value)

    def finish(self, *args: Any, **kwargs: Any) -> None:
        import wandb

        self.run.finish(*args, **kwargs)
        _end_service(wandb)

    def __enter__(self) -> TrialRun:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        import wandb

        from ..worker.session import _TrialInterrupt

        if isinstance(exc_info[1], _TrialInterrupt):  # a scheduler's STOP or PAUSE is no failure
            exc_info = (None, None, None)
        self.run.__exit__(*exc_info)
        _end_service(wandb)


def _end_service(wandb: Any) -> None:
    """Ends W&B's service process once it has written everything (and forgets it, so that the
    next `wandb.init` starts a new one)."""
    try:
        wandb.teardown()
    except OSError:  # the service was already gone; W&B has forgotten it all the same
        pass
