"""MLflow: one MLflow run per trial, from the driver (`MLflowLoggerCallback`) or the trial (`setup_mlflow`).

`pip install 'asynctune[mlflow]'`. Runs go to any tracking URI MLflow accepts: a local directory,
a SQLite file (`sqlite:///mlflow.db`), or a tracking server (`http://host:5000`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..reporting.callback import Callback
from ..core.trial import Status, Trial
from ._common import (
    EXPERIMENT_DIR_TAG, RESULT_FIELDS_NOT_LOGGED, STATUS_TAG, TRIAL_ID_TAG, TrackerThread, experiment_name_of,
    numeric_metrics, require, trial_params,
)

# What MLflow calls a run that ended like the trial (a trial still PAUSED or RUNNING when the
# driver stops was interrupted: `asynctune.resume` sets its run RUNNING again).
RUN_STATUS = {Status.FINISHED: "FINISHED", Status.EARLY_STOPPED: "FINISHED", Status.ERROR: "FAILED"}
_INTERRUPTED = "KILLED"
_PARAMS_PER_BATCH = 100  # MLflow's limits for one log_batch call
_METRICS_PER_BATCH = 1000
_SIDE_TAG = "asynctune.side"  # "driver" (the callback's run) or "trainable" (setup_mlflow's)
_CONFIG_TAG = "asynctune.config"  # the config as it is now (PBT changes it; params keep the first one)


class MLflowLoggerCallback(Callback):
    """Logs every trial as an MLflow run: its config, each reported metric at its step, its status.

    All runs go into one MLflow experiment named after the asynctune experiment (its directory's
    name) unless `experiment_name` says otherwise. Each run is named after its trial and tagged
    `asynctune.trial_id` and `asynctune.status` (PENDING, RUNNING, PAUSED, FINISHED, EARLY_STOPPED,
    ERROR, as in `ExperimentAnalysis`); its MLflow status is FINISHED for a FINISHED or EARLY_STOPPED
    trial, FAILED for an
    ERROR, KILLED for a trial the driver left unfinished. `asynctune.resume` continues the same
    runs. Calls to MLflow happen on one I/O thread, so a slow tracking server never holds up the
    experiment; `run()` returns after everything is logged.

    Example:
        >>> from asynctune.integrations.mlflow import MLflowLoggerCallback
        >>> asynctune.run(train, config=space, metric="loss", mode="min",
        ...               callbacks=[MLflowLoggerCallback("sqlite:///mlflow.db")])
        $ mlflow ui --backend-store-uri sqlite:///mlflow.db

    Args:
        tracking_uri: Where runs are stored; None: MLflow's default (`MLFLOW_TRACKING_URI`, else ./mlruns).
        registry_uri: MLflow's model registry URI, if not the tracking URI.
        experiment_name: The MLflow experiment; None: the asynctune experiment's name. Created
            if it does not exist.
        tags: Extra tags set on every run.
        save_artifact: Upload each checkpoint the trials report as an artifact of their run
            (under its directory name, e.g. `checkpoint_000003/`).
        exclude: Result keys not logged as metrics.
    """

    def __init__(self, tracking_uri: str | None = None, *, registry_uri: str | None = None,
                 experiment_name: str | None = None, tags: Mapping[str, Any] | None = None,
                 save_artifact: bool = False, exclude: Collection[str] = RESULT_FIELDS_NOT_LOGGED) -> None:
        require("mlflow", "mlflow", "MLflowLoggerCallback")
        for name, value in (("tracking_uri", tracking_uri), ("registry_uri", registry_uri),
                            ("experiment_name", experiment_name)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"MLflowLoggerCallback: {name} must be a non-empty string or None, got {value!r}")
        if tags is not None and not isinstance(tags, Mapping):
            raise ValueError(f"MLflowLoggerCallback: tags must be a dict, got {tags!r}")
        if isinstance(exclude, str) or not all(isinstance(k, str) for k in exclude):
            raise ValueError(f"MLflowLoggerCallback: exclude must be a collection of result keys, got {exclude=}")
        self.tracking_uri, self.registry_uri, self.experiment_name = tracking_uri, registry_uri, experiment_name
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.save_artifact = bool(save_artifact)
        self.exclude = frozenset(exclude)
        self._init_state()

    def _init_state(self) -> None:
        self._io = TrackerThread("mlflow")
        self._client: Any = None
        self.experiment_id: str | None = None
        self.experiment_dir: str | None = None
        self._runs: dict[str, str] = {}  # trial id -> MLflow run id (read and written on the I/O thread)
        self._open: set[str] = set()  # trials whose run this driver set RUNNING and has not ended

    def __getstate__(self) -> dict[str, Any]:  # kept for resume: the settings, not the thread or client
        keep = ("tracking_uri", "registry_uri", "experiment_name", "tags", "save_artifact", "exclude")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    def run_id(self, trial_id: str) -> str | None:
        """The MLflow run of a trial (once its start has been logged; see `flush`)."""
        return self._runs.get(trial_id)

    def flush(self) -> None:
        """Wait until everything received so far is logged."""
        self._io.flush()

    # Callback (on the event loop: queue the work) ------------------------------------------------

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.experiment_dir = experiment_dir
        self._io.submit(self._open_experiment, experiment_dir)

    def on_trial_start(self, trial: Trial) -> None:
        self._io.submit(self._start_run, trial.trial_id, dict(trial.config))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None:
        step = int(result.get("training_iteration", trial.num_results))
        timestamp_ms = int(1000 * (result.get("timestamp") or time.time()))
        self._io.submit(self._log_metrics, trial.trial_id, numeric_metrics(result, self.exclude), step, timestamp_ms)

    def on_checkpoint(self, trial: Trial, checkpoint: str) -> None:
        if self.save_artifact:
            self._io.submit(self._log_checkpoint, trial.trial_id, checkpoint)

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        if decision == "PAUSE":
            self._io.submit(self._set_status_tag, trial.trial_id, Status.PAUSED.value)

    def on_trial_complete(self, trial: Trial) -> None:
        self._io.submit(self._end_run, trial.trial_id, trial.status.value, RUN_STATUS[Status.FINISHED])

    def on_trial_error(self, trial: Trial) -> None:
        self._io.submit(self._end_run, trial.trial_id, trial.status.value, RUN_STATUS[Status.ERROR])

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        for trial in trials:  # the trials the driver leaves unfinished: their runs say so
            self._io.submit(self._end_run, trial.trial_id, trial.status.value,
                            RUN_STATUS.get(trial.status, _INTERRUPTED))
        self._io.close()

    # The I/O thread ------------------------------------------------------------------------------

    def _open_experiment(self, experiment_dir: str) -> None:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        name = self.experiment_name or experiment_name_of(experiment_dir)
        self.experiment_id = _experiment_id(self._client, name)
        # A resumed experiment continues its trials' runs.
        for run in _all_runs(self._client, self.experiment_id):
            tags = run.data.tags
            if tags.get(EXPERIMENT_DIR_TAG) == experiment_dir and tags.get(_SIDE_TAG) == "driver":
                self._runs.setdefault(tags.get(TRIAL_ID_TAG, ""), run.info.run_id)

    def _start_run(self, trial_id: str, config: dict[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        if self._client is None:
            return
        run_id = self._runs.get(trial_id)
        tags = {STATUS_TAG: Status.RUNNING.value, _CONFIG_TAG: _config_json(config)}
        if run_id is None:
            run = self._client.create_run(self.experiment_id, run_name=trial_id, tags={
                **self.tags, TRIAL_ID_TAG: trial_id, EXPERIMENT_DIR_TAG: self.experiment_dir or "",
                _SIDE_TAG: "driver", **tags})
            run_id = self._runs[trial_id] = run.info.run_id
            params = [Param(k, str(v)) for k, v in trial_params(config).items()]
            for i in range(0, len(params), _PARAMS_PER_BATCH):
                self._client.log_batch(run_id, params=params[i:i + _PARAMS_PER_BATCH])
        else:  # a restart (pause, retry, resume): the run goes on
            self._client.update_run(run_id, status="RUNNING")
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self._open.add(trial_id)

    def _log_metrics(self, trial_id: str, values: dict[str, float], step: int, timestamp_ms: int) -> None:
        from mlflow.entities import Metric

        run_id = self._runs.get(trial_id)
        if run_id is None or not values:
            return
        metrics = [Metric(key, value, timestamp_ms, step) for key, value in values.items()]
        for i in range(0, len(metrics), _METRICS_PER_BATCH):
            self._client.log_batch(run_id, metrics=metrics[i:i + _METRICS_PER_BATCH])

    def _log_checkpoint(self, trial_id: str, checkpoint: str) -> None:
        run_id = self._runs.get(trial_id)
        if run_id is not None and os.path.isdir(checkpoint):  # kept checkpoints may be gone already
            self._client.log_artifacts(run_id, checkpoint, artifact_path=os.path.basename(checkpoint))

    def _set_status_tag(self, trial_id: str, status: str) -> None:
        if (run_id := self._runs.get(trial_id)) is not None:
            self._client.set_tag(run_id, STATUS_TAG, status)

    def _end_run(self, trial_id: str, status: str, run_status: str) -> None:
        if trial_id not in self._open:  # never started by this driver, or ended already
            return
        run_id = self._runs[trial_id]
        self._client.set_tag(run_id, STATUS_TAG, status)
        self._client.set_terminated(run_id, status=run_status)
        self._open.discard(trial_id)


def setup_mlflow(config: Mapping[str, Any] | None = None, *, tracking_uri: str | None = None,
                 registry_uri: str | None = None, experiment_name: str | None = None,
                 tags: Mapping[str, Any] | None = None) -> Any:
    """Start (or continue) this trial's MLflow run inside the trainable; returns the `mlflow` module.

    Log whatever the trial wants with MLflow's own API (`mlflow.log_metric`, `log_figure`,
    `pytorch.log_model`). The run is named after the trial, tagged `asynctune.trial_id`, and
    holds the config as params; a trial that runs again (after a pause, a retry or a resume)
    continues its run. The MLflow experiment is the asynctune experiment's name unless
    `experiment_name` says otherwise. Use this or `MLflowLoggerCallback` for a trial, not both
    in the same MLflow experiment (that would make two runs per trial).

    Example:
        >>> def train(config):
        ...     mlflow = setup_mlflow(config, tracking_uri="sqlite:////tmp/mlflow.db")
        ...     for epoch in range(10):
        ...         mlflow.log_metric("loss", loss, step=epoch)
        ...         asynctune.report(loss=loss)

    Args:
        config: Logged as the run's params (None: the trial's own config is not logged).
        tracking_uri, registry_uri: As for `MLflowLoggerCallback`; None: MLflow's default.
        experiment_name: The MLflow experiment; None: the asynctune experiment's name.
        tags: Extra tags on the run.
    """
    mlflow = require("mlflow", "mlflow", "setup_mlflow")
    from ..worker.session import get_trial_dir, get_trial_id

    trial_id, trial_dir = get_trial_id(), get_trial_dir()
    experiment_dir = os.path.dirname(os.path.normpath(trial_dir))
    if mlflow.active_run() is not None:  # a worker process reused from an earlier trial
        mlflow.end_run()
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    if registry_uri is not None:
        mlflow.set_registry_uri(registry_uri)
    client = mlflow.tracking.MlflowClient()
    experiment_id = _experiment_id(client, experiment_name or experiment_name_of(experiment_dir))
    # By id: set by name, MLflow leaves the Default experiment active when another process
    # creates the named one at the same moment (trials starting together race to make it).
    mlflow.set_experiment(experiment_id=experiment_id)
    previous = [run for run in _all_runs(client, experiment_id)
                if run.data.tags.get(TRIAL_ID_TAG) == trial_id and run.data.tags.get(_SIDE_TAG) == "trainable"
                and run.data.tags.get(EXPERIMENT_DIR_TAG) == experiment_dir]
    if previous:
        mlflow.start_run(run_id=previous[0].info.run_id)
    else:
        mlflow.start_run(experiment_id=experiment_id, run_name=trial_id, tags={
            **{str(k): str(v) for k, v in (tags or {}).items()}, TRIAL_ID_TAG: trial_id,
            EXPERIMENT_DIR_TAG: experiment_dir, _SIDE_TAG: "trainable"})
        if config:
            params = trial_params(config)
            keys = list(params)
            for i in range(0, len(keys), _PARAMS_PER_BATCH):
                mlflow.log_params({k: params[k] for k in keys[i:i + _PARAMS_PER_BATCH]})
    return mlflow


def _experiment_id(client: Any, name: str) -> str:
    """The id of the MLflow experiment `name`, made if it is new, also when others make it at once."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id  # another process made it just now


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _config_json(config: dict[str, Any]) -> str:
    text = json.dumps(trial_params(config), sort_keys=True)
    return text if len(text) <= 5000 else text[:4997] + "..."  # MLflow caps a tag's value
