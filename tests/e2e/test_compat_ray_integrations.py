"""asynctune.compat.ray.tune.integration: the framework callbacks of Ray Tune's docs, on real runs."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

from asynctune.compat.ray import tune
from asynctune.compat.ray._unsupported import UnsupportedRayFeature
from asynctune.compat.ray.tune.schedulers import ASHAScheduler

sklearn_datasets = pytest.importorskip("sklearn.datasets")

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module

PARAMS = {"objective": "binary", "metric": ["binary_error", "binary_logloss"], "verbose": -1, "num_iterations": 6}


def boost(config: dict) -> None:
    import lightgbm as lgb
    from asynctune.compat.ray.tune.integration.lightgbm import TuneReportCheckpointCallback
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    train_set = lgb.Dataset(data[:400], label=target[:400])
    test_set = lgb.Dataset(data[400:], label=target[400:])
    lgb.train({**PARAMS, **config}, train_set, valid_sets=[test_set], valid_names=["eval"],
              callbacks=[TuneReportCheckpointCallback({"logloss": "eval-binary_logloss", "error": "eval-binary_error"},
                                                      filename="model.txt", frequency=2)])


def boost_cv(config: dict) -> None:
    import lightgbm as lgb
    from asynctune.compat.ray.tune.integration.lightgbm import TuneReportCallback
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    lgb.cv({**PARAMS, **config}, lgb.Dataset(data, label=target), nfold=3, stratified=True,
           callbacks=[TuneReportCallback(["valid-binary_logloss-mean", "valid-binary_logloss-stdv"])])


@pytest.fixture
def lightgbm():
    return pytest.importorskip("lightgbm")


@pytest.fixture
def xgboost():
    return pytest.importorskip("xgboost")


def test_lightgbm_train_reports_every_round_and_checkpoints_the_model(storage, lightgbm):
    from asynctune.compat.ray.tune.integration.lightgbm import TuneReportCheckpointCallback
    results = tune.Tuner(boost, param_space={"learning_rate": tune.grid_search([0.05, 0.3])},
                         tune_config=tune.TuneConfig(metric="logloss", mode="min",
                                                     scheduler=ASHAScheduler(max_t=6, grace_period=2)),
                         run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    best = results.get_best_result()
    assert best.config == {"learning_rate": 0.3}  # faster learning, lower logloss after 6 rounds
    assert best.metrics["training_iteration"] == 6 and 0 <= best.metrics["error"] <= 1
    assert sorted(m["training_iteration"] for _, m in best.best_checkpoints) == [2, 4, 6]
    model = TuneReportCheckpointCallback.get_model(best.checkpoint, filename="model.txt")
    assert model.current_iteration() == 6


def test_lightgbm_cv_reports_mean_and_stdv_without_checkpoints(storage, lightgbm):
    result = tune.Tuner(boost_cv, run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()[0]
    assert result.metrics["training_iteration"] == 6 and result.checkpoint is None
    assert result.metrics["valid-binary_logloss-stdv"] >= 0 and 0 < result.metrics["valid-binary_logloss-mean"] < 1


def xgboost_rounds(config: dict) -> None:
    import xgboost as xgb
    from asynctune.compat.ray.tune.integration.xgboost import TuneReportCheckpointCallback
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    train_set, test_set = xgb.DMatrix(data[:400], label=target[:400]), xgb.DMatrix(data[400:], label=target[400:])
    xgb.train({"objective": "binary:logistic", "eval_metric": ["logloss", "error"], **config}, train_set,
              num_boost_round=5, evals=[(test_set, "test")], verbose_eval=False,
              callbacks=[TuneReportCheckpointCallback(frequency=2, filename="booster.json")])


def test_xgboost_train_reports_every_round_and_checkpoints_the_booster(storage, xgboost):
    from asynctune.compat.ray.tune.integration.xgboost import TuneReportCheckpointCallback
    results = tune.Tuner(xgboost_rounds, param_space={"eta": tune.grid_search([0.05, 0.5])},
                         tune_config=tune.TuneConfig(metric="test-logloss", mode="min"),
                         run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    best = results.get_best_result()
    assert best.config == {"eta": 0.5} and 0 <= best.metrics["test-error"] <= 1
    # rounds 1-5, checkpoints at 2 and 4, and the end's checkpoint with round 5's results (as Ray)
    assert list(best.metrics_dataframe["test-logloss"])[-1] == list(best.metrics_dataframe["test-logloss"])[-2]
    assert sorted(m["training_iteration"] for _, m in best.best_checkpoints) == [2, 4, 6]
    booster = TuneReportCheckpointCallback.get_model(best.checkpoint, filename="booster.json")
    assert booster.num_boosted_rounds() == 5


def boosters_by_ray_trains_name(config: dict) -> None:
    """Ray 2.10+'s docs tune boosters with ray.train.<library>.RayTrainReportCallback."""
    import lightgbm as lgb
    import xgboost as xgb
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    if config["library"] == "xgboost":
        from asynctune.compat.ray.train.xgboost import RayTrainReportCallback
        train_set, test_set = xgb.DMatrix(data[:400], label=target[:400]), xgb.DMatrix(data[400:], label=target[400:])
        xgb.train({"objective": "binary:logistic", "eval_metric": "logloss"}, train_set, num_boost_round=4,
                  evals=[(test_set, "eval")], verbose_eval=False,
                  callbacks=[RayTrainReportCallback({"loss": "eval-logloss"}, frequency=2)])
    else:
        from asynctune.compat.ray.train.lightgbm import RayTrainReportCallback
        lgb.train({**PARAMS, "num_iterations": 4}, lgb.Dataset(data[:400], label=target[:400]),
                  valid_sets=[lgb.Dataset(data[400:], label=target[400:])], valid_names=["eval"],
                  callbacks=[RayTrainReportCallback({"loss": "eval-binary_logloss"}, frequency=2)])


def test_ray_trains_booster_callbacks_are_the_tune_callbacks(storage, xgboost, lightgbm):
    from asynctune.compat.ray.train import lightgbm as train_lightgbm, xgboost as train_xgboost
    grid = tune.Tuner(boosters_by_ray_trains_name, param_space={"library": tune.grid_search(["xgboost", "lightgbm"])},
                      run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    assert grid.num_errors == 0, grid.errors
    by_library = {r.config["library"]: r for r in grid}
    assert train_xgboost.RayTrainReportCallback.get_model(by_library["xgboost"].checkpoint).num_boosted_rounds() == 4
    assert train_lightgbm.RayTrainReportCallback.get_model(by_library["lightgbm"].checkpoint).current_iteration() == 4
    assert all(r.metrics["loss"] > 0 for r in grid)
    with pytest.raises(UnsupportedRayFeature, match="ray.train.xgboost.XGBoostTrainer.*trainable"):
        train_xgboost.XGBoostTrainer  # noqa: B018


def test_lightgbm_callbacks_have_rays_defaults_and_postprocessing(storage, lightgbm):
    def boost_postprocessed(config: dict) -> None:
        import lightgbm as lgb
        from asynctune.compat.ray.tune.integration.lightgbm import TuneReportCheckpointCallback
        data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
        lgb.train(PARAMS, lgb.Dataset(data[:400], label=target[:400]),
                  valid_sets=[lgb.Dataset(data[400:], label=target[400:])], valid_names=["eval"],
                  callbacks=[TuneReportCheckpointCallback("eval-binary_logloss", results_postprocessing_fn=lambda r: {
                      **r, "accuracy_proxy": 1 - r["eval-binary_logloss"]})])

    result = tune.Tuner(boost_postprocessed, run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()[0]
    assert result.metrics["accuracy_proxy"] == pytest.approx(1 - result.metrics["eval-binary_logloss"])
    # Ray's frequency=0: one checkpoint, at the end, as Ray's model.txt
    assert [m["training_iteration"] for _, m in result.best_checkpoints] == [6]
    from asynctune.compat.ray.tune.integration.lightgbm import TuneReportCheckpointCallback
    assert TuneReportCheckpointCallback.get_model(result.checkpoint).current_iteration() == 6


def xgboost_cv(config: dict) -> None:
    import xgboost as xgb
    from asynctune.compat.ray.tune.integration.xgboost import TuneReportCallback
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    xgb.cv({"objective": "binary:logistic", "eval_metric": "logloss"}, xgb.DMatrix(data, label=target),
           num_boost_round=3, nfold=3, callbacks=[TuneReportCallback(
               "test-logloss", results_postprocessing_fn=lambda r: {"mean": r["test-logloss"][0],
                                                                    "std": r["test-logloss"][1]})])


def test_xgboost_cv_reports_rays_mean_std_pairs_to_the_postprocessing_fn(storage, xgboost):
    result = tune.Tuner(xgboost_cv, run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()[0]
    assert result.metrics["training_iteration"] == 3 and result.checkpoint is None
    assert 0 < result.metrics["mean"] < 0.7 and result.metrics["std"] >= 0


# Experiment trackers, as Ray's docs use them: a callback in RunConfig, or setup_* in the trainable.

def tracked(config: dict) -> None:
    for step in range(1, 4):
        tune.report({"loss": config["x"] / step, "extra": step})


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    client = pytest.importorskip("mlflow.tracking").MlflowClient
    monkeypatch.chdir(tmp_path)  # MLflow keeps artifacts under ./mlartifacts next to a SQLite store
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client(uri).search_experiments()  # create the tables before trials race to
    return uri


def test_rays_mlflow_logger_callback_logs_each_trial_as_a_run(storage, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from asynctune.compat.ray.air.integrations.mlflow import MLflowLoggerCallback
    results = tune.Tuner(tracked, param_space={"x": tune.grid_search([1.0, 2.0])}, run_config=tune.RunConfig(
        storage_path=storage, verbose=0, callbacks=[MLflowLoggerCallback(
            tracking_uri=mlflow_uri, experiment_name="ray_style", tags={"team": "a"}, save_artifact=False)])).fit()
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("ray_style")
    runs = {run.data.tags["asynctune.trial_id"]: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(r.metrics["trial_id"] for r in results)
    for result in results:
        run = runs[result.metrics["trial_id"]]
        assert run.data.params["x"] == str(result.config["x"]) and run.data.tags["team"] == "a"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(i, result.config["x"] / i) for i in (1, 2, 3)]
        assert run.info.status == "FINISHED"


def with_setup_mlflow(config: dict) -> None:
    from asynctune.compat.ray.air.integrations.mlflow import setup_mlflow
    mlflow = setup_mlflow(config, tracking_uri=config["mlflow"]["uri"], experiment_id=config["mlflow"]["id"])
    for step in range(3):
        mlflow.log_metric("inner", step * config["x"], step=step)
    tune.report({"loss": 1.0})


def test_rays_setup_mlflow_logs_from_the_trainable_into_the_experiment_by_id(storage, mlflow_uri):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_uri)
    experiment_id = client.create_experiment("made_beforehand")
    tune.Tuner(with_setup_mlflow, param_space={"x": tune.grid_search([1, 2]), "mlflow": {
        "uri": mlflow_uri, "id": experiment_id}}, run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    runs = client.search_runs([experiment_id])
    assert sorted(run.data.params["x"] for run in runs) == ["1", "2"]
    for run in runs:
        assert not any(key.startswith("mlflow") for key in run.data.params)  # Ray leaves its settings out
        history = client.get_metric_history(run.info.run_id, "inner")
        assert [m.value for m in history] == [step * int(run.data.params["x"]) for step in range(3)]


def test_rays_setup_mlflow_arguments_asynctune_cannot_honour_are_refused():
    pytest.importorskip("mlflow")
    from asynctune.compat.ray._unsupported import UnsupportedRayFeature
    from asynctune.compat.ray.air.integrations.mlflow import setup_mlflow
    with pytest.raises(UnsupportedRayFeature, match="run_name"):
        setup_mlflow({}, run_name="mine")


@pytest.fixture
def wandb_offline(monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from tests.helpers.wandb_offline import read_run
    yield read_run
    wandb.teardown()


def _offline_runs(directory, read_run) -> list[dict]:
    import glob
    import os
    return [read_run(d) for d in sorted(glob.glob(os.path.join(str(directory), "**", "offline-run-*"),
                                                  recursive=True))]


def test_rays_wandb_logger_callback_logs_each_trial_offline(storage, wandb_offline):
    from asynctune.compat.ray.air.integrations.wandb import WandbLoggerCallback
    results = tune.Tuner(tracked, param_space={"x": tune.grid_search([1.0, 2.0])}, run_config=tune.RunConfig(
        storage_path=storage, name="wandb_ray", verbose=0, callbacks=[WandbLoggerCallback(
            project="p", group="g", excludes=["extra"], log_config=True, mode="offline")])).fit()
    runs = {run["name"]: run for run in _offline_runs(storage, wandb_offline)}
    assert sorted(runs) == sorted(r.metrics["trial_id"] for r in results)
    for result in results:
        run = runs[result.metrics["trial_id"]]
        assert (run["project"], run["group"], run["config"]["x"]) == ("p", "g", result.config["x"])
        assert [h["loss"] for h in run["history"]] == [result.config["x"] / i for i in (1, 2, 3)]
        assert all("extra" not in h for h in run["history"])  # excludes=, as in Ray
        assert run["exit_code"] == 0


def test_rays_wandb_logger_callback_needs_a_project_and_refuses_checkpoint_uploads(monkeypatch, wandb_offline):
    from asynctune.compat.ray._unsupported import UnsupportedRayFeature
    from asynctune.compat.ray.air.integrations.wandb import WandbLoggerCallback
    monkeypatch.delenv("WANDB_PROJECT_NAME", raising=False)
    with pytest.raises(ValueError, match="project is required"):
        WandbLoggerCallback()
    with pytest.raises(UnsupportedRayFeature, match="upload_checkpoints"):
        WandbLoggerCallback(project="p", upload_checkpoints=True)


def with_setup_wandb(config: dict) -> None:
    from asynctune.compat.ray.air.integrations.wandb import setup_wandb
    run = setup_wandb(config, project="p", mode="offline")
    for step in range(3):
        run.log({"inner": step * config["x"]}, step=step)
    run.finish()
    tune.report({"loss": 1.0})


def test_rays_setup_wandb_logs_from_the_trainable(storage, wandb_offline):
    results = tune.Tuner(with_setup_wandb, param_space={"x": tune.grid_search([1, 2]), "wandb": {"k": 1}},
                         run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    runs = {run["name"]: run for run in _offline_runs(storage, wandb_offline)}
    assert sorted(runs) == sorted(r.metrics["trial_id"] for r in results)
    for result in results:
        run = runs[result.metrics["trial_id"]]
        assert run["project"] == "p" and run["config"]["x"] == result.config["x"] and "wandb" not in run["config"]
        assert [h["inner"] for h in run["history"]] == [step * result.config["x"] for step in range(3)]


# Ray's Lightning and Keras callbacks (skipped where the framework is not installed).

def lightning_trainable(config: dict) -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from asynctune.compat.ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

    class Line(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

        def validation_step(self, batch, _):
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=config["lr"])

    torch.set_num_threads(1)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, x @ torch.tensor([[1.0], [-1.0]])), batch_size=16)
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=[TuneReportCheckpointCallback(
                             {"loss": "val_loss"}, filename="trainer.ckpt", on="validation_end")])
    trainer.fit(Line(), data, data)


def test_rays_lightning_callback_reports_each_validation_with_the_trainers_checkpoint(storage):
    pytest.importorskip("torch")
    pytest.importorskip("lightning")
    import os
    result = tune.Tuner(lightning_trainable, param_space={"lr": 0.05},
                        run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()[0]
    assert result.metrics["training_iteration"] == 3 and result.metrics["loss"] >= 0
    assert os.path.isfile(os.path.join(result.checkpoint.path, "trainer.ckpt"))  # Ray's filename=


def keras_trainable(config: dict) -> None:
    import keras
    import numpy as np

    from asynctune.compat.ray.tune.integration.keras import TuneReportCallback
    x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x.sum(axis=1), validation_split=0.25, epochs=3, verbose=0,
              callbacks=[TuneReportCallback({"loss": "val_loss"}, on="epoch_end")])


def test_rays_keras_callback_reports_each_epoch(storage, monkeypatch):
    keras_3(monkeypatch)
    result = tune.Tuner(keras_trainable, run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()[0]
    assert result.metrics["training_iteration"] == 3 and result.checkpoint is None  # TuneReportCallback: no saves


def keras_air_trainable(config: dict) -> None:
    """Ray 2.x's Keras way: ray.air.integrations.keras.ReportCheckpointCallback, metrics renamed."""
    import keras
    import numpy as np

    from asynctune.compat.ray.air.integrations.keras import ReportCheckpointCallback
    x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(config["lr"]), loss="mse")
    model.fit(x, x.sum(axis=1), validation_split=0.25, epochs=3, verbose=0,
              callbacks=[ReportCheckpointCallback(checkpoint_on=config["checkpoint_on"], metrics={"loss": "val_loss"})])


def test_rays_air_keras_report_checkpoint_callback_reports_and_saves_each_epoch(storage, monkeypatch):
    import os
    keras = keras_3(monkeypatch)
    space = {"lr": 0.01, "checkpoint_on": tune.grid_search(["epoch_end", []])}
    grid = tune.Tuner(keras_air_trainable, param_space=space,
                      run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
    saving, reporting = grid[0], grid[1]
    assert saving.metrics["training_iteration"] == 3 and saving.metrics["loss"] >= 0
    assert len(saving.metrics_dataframe) == 3 and len(reporting.metrics_dataframe) == 3
    with saving.checkpoint.as_directory() as directory:  # Ray's file name, read back as Ray's users do
        model = keras.models.load_model(os.path.join(directory, "model.keras"))
    assert model.count_params() == 3
    assert reporting.checkpoint is None  # checkpoint_on=[]: metrics only
    from asynctune.compat.ray.air.integrations.keras import ReportCheckpointCallback
    with pytest.raises(ValueError, match="report_metrics_on='validation_end' is not a Keras hook.*epoch_end"):
        ReportCheckpointCallback(report_metrics_on="validation_end")
    with pytest.raises(UnsupportedRayFeature, match="report_metrics_on='predict_end'.*epoch_end"):
        ReportCheckpointCallback(report_metrics_on="predict_end")
    with pytest.raises(UnsupportedRayFeature, match="checkpoint_on='test_end'.*report_metrics_on='epoch_end'"):
        ReportCheckpointCallback(checkpoint_on="test_end", report_metrics_on="epoch_end")


def keras_3(monkeypatch):
    import importlib.util
    if importlib.util.find_spec("tensorflow") is None and importlib.util.find_spec("torch") is not None:
        monkeypatch.setenv("KERAS_BACKEND", "torch")  # the trials' workers inherit it
    keras = pytest.importorskip("keras")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("Keras 3 is needed")
    return keras


def test_importing_rays_integration_modules_imports_no_framework():
    import subprocess
    modules = ["asynctune.compat.ray", "asynctune.compat.ray.air.integrations.mlflow",
               "asynctune.compat.ray.air.integrations.keras",
               "asynctune.compat.ray.air.integrations.wandb", "asynctune.compat.ray.tune.integration.keras",
               "asynctune.compat.ray.tune.integration.pytorch_lightning"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\n" \
           "print(sorted({'mlflow', 'wandb', 'torch', 'keras', 'lightning', 'pytorch_lightning'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_a_results_postprocessing_fn_that_is_not_a_function_is_refused_at_once(lightgbm, xgboost):
    from asynctune.compat.ray.tune.integration import lightgbm as ray_lightgbm, xgboost as ray_xgboost
    for module in (ray_lightgbm, ray_xgboost):
        with pytest.raises(ValueError, match="results_postprocessing_fn must be a function"):
            module.TuneReportCheckpointCallback(results_postprocessing_fn={"not": "callable"})
