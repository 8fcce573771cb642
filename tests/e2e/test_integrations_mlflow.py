"""MLflow: runs written by real experiments into a SQLite tracking store, read back with MlflowClient."""

from __future__ import annotations

import os

import pytest

import asynctune as at
from tests.helpers.tracker_runs import interrupted_experiment

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 'asynctune[mlflow]')")
from mlflow.tracking import MlflowClient  # noqa: E402

from asynctune.integrations.mlflow import MLflowLoggerCallback, setup_mlflow  # noqa: E402


def _train(config):
    for i in range(1, 5):
        if config["x"] == 3 and i == 3:
            raise RuntimeError("diverged")
        at.report(loss=config["x"] / i, nested={"acc": i / 10}, checkpoint={"i": i} if i % 2 == 0 else None)


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow keeps artifacts under ./mlartifacts next to a SQLite store
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # Create the store's tables now: trials that open a new SQLite store at once race to migrate it.
    MlflowClient(uri).search_experiments()
    return uri


def _runs(client, experiment_name):
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"no MLflow experiment {experiment_name!r}"
    return {run.data.tags["asynctune.trial_id"]: run for run in client.search_runs([experiment.experiment_id])}


def test_each_trial_is_a_run_with_its_params_metrics_status_and_checkpoints(storage, tracking_uri):
    analysis = at.run(_train, config={"x": at.grid_search([1, 2, 3])}, metric="loss", mode="min",
                      storage_path=storage, name="mlflow_runs", max_failures=0, verbose=0,
                      callbacks=[MLflowLoggerCallback(tracking_uri, save_artifact=True, tags={"team": "a"})])
    client = MlflowClient(tracking_uri)
    runs = _runs(client, "mlflow_runs")  # the MLflow experiment is named after the asynctune one
    assert sorted(runs) == sorted(t.trial_id for t in analysis.trials)
    for trial in analysis.trials:
        run = runs[trial.trial_id]
        assert run.info.run_name == trial.trial_id
        assert run.data.tags["team"] == "a"
        assert run.data.tags["asynctune.status"] == trial.status.value
        assert run.info.status == ("FAILED" if trial.status is at.Status.ERROR else "FINISHED")
        assert run.data.params["x"] == str(trial.config["x"])
        history = client.get_metric_history(run.info.run_id, "loss")
        reported = analysis.trial_results(trial.trial_id)
        assert [(m.step, m.value) for m in history] == [(r["training_iteration"], r["loss"]) for r in reported]
        assert run.data.metrics["loss"] == trial.last_result["loss"]  # the final metric, as the analysis has it
        assert run.data.metrics["nested/acc"] == pytest.approx(trial.last_result["nested"]["acc"])
        assert "trial_id" not in run.data.metrics and "time_total_s" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "checkpoint_000002" in artifacts
    assert [t.status for t in analysis.trials].count(at.Status.ERROR) == 1


def test_a_resumed_experiment_continues_the_same_runs(tmp_path, tracking_uri):
    experiment_dir = interrupted_experiment(tmp_path, "resumed", "from asynctune.integrations.mlflow import "
                                            "MLflowLoggerCallback", f"MLflowLoggerCallback({tracking_uri!r})")
    client = MlflowClient(tracking_uri)
    before = _runs(client, "resumed")
    assert "KILLED" in {run.info.status for run in before.values()}

    analysis = at.resume(str(experiment_dir), verbose=0)  # the callback comes back from the saved run spec
    after = _runs(client, "resumed")
    assert len(after) == len(analysis.trials) == 4
    assert {t: r.info.run_id for t, r in before.items()} == {t: after[t].info.run_id for t in before}
    for trial in analysis.trials:
        run = after[trial.trial_id]
        assert (run.info.status, run.data.tags["asynctune.status"]) == ("FINISHED", "FINISHED")
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
        assert steps == set(range(1, 9))
        assert run.data.metrics["loss"] == trial.last_result["loss"]


def _train_with_setup_mlflow(config):
    mlflow = setup_mlflow(config, tracking_uri=config["uri"])
    start = (at.get_checkpoint() or {"i": 0})["i"]
    for i in range(start, 4):
        mlflow.log_metric("inner", i * config["x"], step=i)
        at.report(loss=float(i), checkpoint={"i": i + 1})
        if i == 1 and not os.path.exists(os.path.join(at.get_trial_dir(), "failed_once")):
            open(os.path.join(at.get_trial_dir(), "failed_once"), "w").close()
            raise RuntimeError("first attempt fails")


def test_setup_mlflow_logs_from_the_trial_and_a_retry_continues_its_run(storage, tracking_uri):
    analysis = at.run(_train_with_setup_mlflow, config={"x": at.grid_search([1, 2]), "uri": tracking_uri},
                      storage_path=storage, name="inside", max_failures=1, verbose=0)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
    client = MlflowClient(tracking_uri)
    runs = _runs(client, "inside")
    assert sorted(runs) == sorted(t.trial_id for t in analysis.trials)
    every = client.search_runs([client.get_experiment_by_name("inside").experiment_id])
    assert len(every) == 2, [(r.data.tags, [m.step for m in client.get_metric_history(r.info.run_id, "inner")])
                             for r in every]  # one run per trial, however often it ran
    for trial in analysis.trials:
        run = runs[trial.trial_id]
        assert run.data.params["x"] == str(trial.config["x"])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "inner")]
        assert steps == [0, 1, 2, 3]  # the retry resumed from the checkpoint at i=2, in the same run


def _train_losing_the_race_to_make_the_experiment(config):
    # Force the race of trials that start together: between MLflow's lookup of the experiment and
    # its creation, another process creates it (here a second client, at that exact moment).
    from mlflow.tracking._tracking_service.client import TrackingServiceClient  # under MlflowClient and mlflow.*

    real_create = TrackingServiceClient.create_experiment

    def create_after_another_process(self, name, *args, **kwargs):
        real_create(TrackingServiceClient(config["uri"]), name)
        return real_create(self, name, *args, **kwargs)  # fails: RESOURCE_ALREADY_EXISTS

    TrackingServiceClient.create_experiment = create_after_another_process
    mlflow = setup_mlflow(config, tracking_uri=config["uri"])
    TrackingServiceClient.create_experiment = real_create
    mlflow.log_metric("inner", 1.0, step=0)
    at.report(loss=1.0)


def test_setup_mlflow_logs_into_the_named_experiment_when_another_process_creates_it_first(storage, tracking_uri):
    analysis = at.run(_train_losing_the_race_to_make_the_experiment, config={"uri": tracking_uri},
                      storage_path=storage, name="raced", verbose=0)
    assert analysis.trials[0].status is at.Status.TERMINATED
    client = MlflowClient(tracking_uri)
    runs = _runs(client, "raced")
    assert list(runs) == [analysis.trials[0].trial_id]  # not in MLflow's Default experiment
    assert [m.step for m in client.get_metric_history(runs[analysis.trials[0].trial_id].info.run_id, "inner")] == [0]


@pytest.mark.parametrize("kwargs, match", [
    ({"tracking_uri": ""}, "tracking_uri"),
    ({"experiment_name": 3}, "experiment_name"),
    ({"tags": ["a"]}, "tags"),
    ({"exclude": "loss"}, "exclude"),
])
def test_bad_arguments_are_rejected_with_their_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLflowLoggerCallback(**kwargs)
