"""asynctune.compat.ray.tune.integration: the framework callbacks of Ray Tune's docs, on real runs."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

from asynctune.compat.ray import tune
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
