"""Ray's `ray.air.integrations.mlflow`: asynctune.integrations.mlflow with Ray's arguments.

    tune.RunConfig(callbacks=[MLflowLoggerCallback(tracking_uri="sqlite:///mlflow.db", experiment_name="exp")])

MLflow itself is imported only when a callback is made or `setup_mlflow` runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from asynctune.integrations import mlflow as _mlflow

from ..._unsupported import unsupported


class MLflowLoggerCallback(_mlflow.MLflowLoggerCallback):
    """Log each trial as an MLflow run (params, every reported metric at its step, status), as
    Ray's. The run is named after the trial id, and the params are logged when the trial starts.

    Args:
        tracking_uri, registry_uri: Where runs (and models) are stored; None: MLflow's default.
        experiment_name: The MLflow experiment; None: the experiment's name (Ray: `RunConfig.name`).
        tags: Tags set on every run.
        tracking_token: Set as MLFLOW_TRACKING_TOKEN for this process, as Ray does (it is not saved
            with the experiment: set the variable yourself before `Tuner.restore`).
        save_artifact: Upload each checkpoint as an artifact of its run.
        log_params_on_trial_end: Accepted for Ray's sake; asynctune logs the params at the trial's start.
    """

    def __init__(self, tracking_uri: str | None = None, *, registry_uri: str | None = None,
                 experiment_name: str | None = None, tags: Mapping[str, Any] | None = None,
                 tracking_token: str | None = None, save_artifact: bool = False,
                 log_params_on_trial_end: bool = False) -> None:
        _set_token(tracking_token)
        super().__init__(tracking_uri, registry_uri=registry_uri, experiment_name=experiment_name, tags=tags,
                         save_artifact=save_artifact)


def setup_mlflow(config: Mapping[str, Any] | None = None, tracking_uri: str | None = None,
                 registry_uri: str | None = None, experiment_id: str | None = None,
                 experiment_name: str | None = None, tracking_token: str | None = None,
                 artifact_location: str | None = None, run_name: str | None = None,
                 create_experiment_if_not_exists: bool = False, tags: Mapping[str, Any] | None = None,
                 rank_zero_only: bool = True) -> ModuleType:
    """Start (or continue) this trial's MLflow run in the trainable and return `mlflow`, as Ray's.

    The config is logged as params (without its "mlflow" key, as in Ray). `experiment_id` is
    looked up to its experiment's name; an experiment that does not exist is created (whatever
    `create_experiment_if_not_exists` says); `rank_zero_only` does nothing (Tune trials have no
    ranks in Ray either). The run is named after the trial id: `run_name` and
    `artifact_location` are not supported.

    Example:
        >>> def train(config):
        ...     mlflow = setup_mlflow(config, tracking_uri="sqlite:////tmp/mlflow.db", experiment_name="exp")
        ...     mlflow.log_metric("loss", 0.5)
    """
    if run_name is not None:
        unsupported("setup_mlflow(run_name=...)", "the run is named after the trial id; set tags= instead")
    if artifact_location is not None:
        unsupported("setup_mlflow(artifact_location=...)", "create the MLflow experiment with its artifact "
                    "location beforehand and pass experiment_name=")
    _set_token(tracking_token)
    if experiment_id is not None and experiment_name is None:
        from mlflow.tracking import MlflowClient

        experiment_name = MlflowClient(tracking_uri, registry_uri).get_experiment(experiment_id).name
    params = {k: v for k, v in (config or {}).items() if k != "mlflow"}
    return _mlflow.setup_mlflow(params, tracking_uri=tracking_uri, registry_uri=registry_uri,
                                experiment_name=experiment_name, tags=tags)


def _set_token(token: str | None) -> None:
    if token is not None:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
