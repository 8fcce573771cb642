"""asynctune.compat.ray.tune.integration: the framework callbacks of Ray Tune's docs, on real runs."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

from asynctune.compat.ray import tune
from asynctune.compat.ray.tune.schedulers import ASHAScheduler

lgb = pytest.importorskip("lightgbm")
sklearn_datasets = pytest.importorskip("sklearn.datasets")
from asynctune.compat.ray.tune.integration.lightgbm import (  # noqa: E402
    TuneReportCallback, TuneReportCheckpointCallback,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module

PARAMS = {"objective": "binary", "metric": ["binary_error", "binary_logloss"], "verbose": -1, "num_iterations": 6}


def boost(config: dict) -> None:
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    train_set = lgb.Dataset(data[:400], label=target[:400])
    test_set = lgb.Dataset(data[400:], label=target[400:])
    lgb.train({**PARAMS, **config}, train_set, valid_sets=[test_set], valid_names=["eval"],
              callbacks=[TuneReportCheckpointCallback({"logloss": "eval-binary_logloss", "error": "eval-binary_error"},
                                                      filename="model.txt", frequency=2)])


def boost_cv(config: dict) -> None:
    data, target = sklearn_datasets.load_breast_cancer(return_X_y=True)
    lgb.cv({**PARAMS, **config}, lgb.Dataset(data, label=target), nfold=3, stratified=True,
           callbacks=[TuneReportCallback(["valid-binary_logloss-mean", "valid-binary_logloss-stdv"])])


def test_lightgbm_train_reports_every_round_and_checkpoints_the_model(storage):
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


def test_lightgbm_cv_reports_mean_and_stdv_without_checkpoints(storage):
    result = tune.Tuner(boost_cv, run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()[0]
    assert result.metrics["training_iteration"] == 6 and result.checkpoint is None
    assert result.metrics["valid-binary_logloss-stdv"] >= 0 and 0 < result.metrics["valid-binary_logloss-mean"] < 1
