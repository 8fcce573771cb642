"""XGBoost and LightGBM callbacks in real trials: rounds reported, boosters checkpointed and resumed."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import asynctune as at
from tests.helpers.integration_faults import die_once_after_a_checkpoint

pytest.importorskip("sklearn", reason="scikit-learn provides the data (pip install 'asynctune[examples]')")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402

ROUNDS = 12


def _data():
    x, y = load_breast_cancer(return_X_y=True)
    return x[::2], y[::2], x[1::2], y[1::2]


def _train_xgboost(config):
    import xgboost as xgb
    from asynctune.integrations.xgboost import TuneReportCheckpointCallback, load_booster

    x, y, xv, yv = _data()
    dtrain, dvalid = xgb.DMatrix(x, label=y), xgb.DMatrix(xv, label=yv)
    _crash_once_after_a_checkpoint(config)
    booster = load_booster()
    done = booster.num_boosted_rounds() if booster else 0
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "error"], "eta": config["eta"],
              "max_depth": 3, "nthread": 1, "seed": 0}
    xgb.train(params, dtrain, num_boost_round=ROUNDS - done, xgb_model=booster, evals=[(dvalid, "valid")],
              verbose_eval=False, callbacks=[TuneReportCheckpointCallback(
                  {"loss": "valid-logloss", "error": "valid-error"}, frequency=config["frequency"])])


def _train_lightgbm(config):
    import lightgbm as lgb
    from asynctune.integrations.lightgbm import TuneReportCheckpointCallback, load_booster

    x, y, xv, yv = _data()
    dtrain = lgb.Dataset(x, label=y, free_raw_data=False)
    dvalid = lgb.Dataset(xv, label=yv, reference=dtrain, free_raw_data=False)
    _crash_once_after_a_checkpoint(config)
    booster = load_booster()
    done = booster.current_iteration() if booster else 0
    params = {"objective": "binary", "metric": ["binary_logloss", "binary_error"], "learning_rate": config["eta"],
              "num_leaves": 7, "num_threads": 1, "seed": 0, "verbose": -1, "deterministic": True}
    lgb.train(params, dtrain, num_boost_round=ROUNDS - done, init_model=booster, valid_sets=[dvalid],
              valid_names=["valid"], callbacks=[TuneReportCheckpointCallback(
                  {"loss": "valid-binary_logloss", "error": "valid-binary_error"}, frequency=config["frequency"])])


def _crash_once_after_a_checkpoint(config):
    if config.get("crash"):
        die_once_after_a_checkpoint()


LIBRARIES = {
    "xgboost": (_train_xgboost, lambda xv, booster: booster.predict(__import__("xgboost").DMatrix(xv))),
    "lightgbm": (_train_lightgbm, lambda xv, booster: booster.predict(xv)),
}


@pytest.fixture(params=list(LIBRARIES), ids=list(LIBRARIES))
def library(request):
    name = request.param
    pytest.importorskip(name, reason=f"{name} is not installed (pip install 'asynctune[{name}]')")
    return request.param


def _load_booster(library, checkpoint):
    return importlib.import_module(f"asynctune.integrations.{library}").load_booster(checkpoint)


def test_each_round_is_a_result_and_the_checkpoint_is_that_rounds_booster(library, storage):
    train, predict = LIBRARIES[library]
    analysis = at.run(train, config={"eta": at.grid_search([0.1, 0.3]), "frequency": 4}, metric="loss", mode="min",
                      storage_path=storage, verbose=0)
    _, _, xv, yv = _data()
    for trial in analysis.trials:
        results = analysis.trial_results(trial.trial_id)
        assert [r["training_iteration"] for r in results] == list(range(1, ROUNDS + 1))
        assert all(0 <= r["error"] <= 1 for r in results)
        # Checkpoints every 4th round; the booster in each predicts the loss reported with it.
        checkpoints = sorted(d for d in os.listdir(trial.path) if d.startswith("checkpoint_"))
        assert checkpoints == [f"checkpoint_{i:06d}" for i in (4, 8, 12)]
        booster = _load_booster(library, os.path.join(trial.path, "checkpoint_000008"))
        assert log_loss(yv, predict(xv, booster)) == pytest.approx(results[7]["loss"], rel=1e-5)
    best = _load_booster(library, analysis.best_checkpoint)
    assert log_loss(yv, predict(xv, best)) == pytest.approx(analysis.best_result["loss"], rel=1e-5)


def test_a_trial_whose_worker_dies_resumes_from_the_booster(library, storage):
    train, _ = LIBRARIES[library]
    config = {"eta": 0.3, "frequency": 2}
    analysis = at.run(train, config={**config, "crash": True}, metric="loss", mode="min", storage_path=storage,
                      name="crashed", max_failures=1, verbose=0)
    reference = at.run(train, config=config, metric="loss", mode="min", storage_path=storage, name="whole",
                       verbose=0)
    (trial,), (whole,) = analysis.trials, reference.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    results = analysis.trial_results(trial.trial_id)
    assert [r["training_iteration"] for r in results] == list(range(1, ROUNDS + 1))  # none lost, none twice
    # Boosting went on from the saved booster: the same model as training without the crash.
    expected = [r["loss"] for r in reference.trial_results(whole.trial_id)]
    assert [r["loss"] for r in results] == pytest.approx(expected, rel=1e-6)


ROUNDS_DONE = {"xgboost": lambda booster: booster.num_boosted_rounds(),
               "lightgbm": lambda booster: booster.current_iteration()}


def test_hyperband_pauses_and_resumes_boosting_from_the_saved_booster(library, storage):
    train, predict = LIBRARIES[library]
    analysis = at.run(train, config={"eta": at.grid_search([0.05, 0.1, 0.2, 0.3]), "frequency": 1}, metric="loss",
                      mode="min", scheduler=at.HyperBandScheduler(max_t=ROUNDS, reduction_factor=3),
                      max_concurrent_trials=2, storage_path=storage, verbose=0)
    paused_at = {d["trial_id"]: d["iteration"] for d in analysis.decisions() if d["decision"] == "PAUSE"}
    assert paused_at, analysis.decisions()  # HyperBand paused trials at a rung
    # ... and promoted some past it: a paused one, or the last to reach the rung (which needs no pause)
    assert max(len(analysis.trial_results(t.trial_id)) for t in analysis.trials) > min(paused_at.values())
    _, _, xv, yv = _data()
    for trial in analysis.trials:
        results = analysis.trial_results(trial.trial_id)
        assert [r["training_iteration"] for r in results] == list(range(1, len(results) + 1))
        # Boosting went on after each pause: the last booster has one round per result, and
        # predicts the last loss reported.
        booster = _load_booster(library, trial.checkpoint)
        assert ROUNDS_DONE[library](booster) == len(results)
        assert log_loss(yv, predict(xv, booster)) == pytest.approx(results[-1]["loss"], rel=1e-5)


def test_a_scheduler_stop_ends_boosting(library, storage):
    train, _ = LIBRARIES[library]
    analysis = at.run(train, config={"eta": 0.3, "frequency": 0}, metric="loss", mode="min", storage_path=storage,
                      stop={"training_iteration": 3}, verbose=0)
    (trial,) = analysis.trials
    assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3]


def test_checkpoint_at_end_alone_saves_the_final_booster(library, storage):
    train, predict = LIBRARIES[library]
    analysis = at.run(train, config={"eta": 0.3, "frequency": 0}, metric="loss", mode="min", storage_path=storage,
                      verbose=0)
    (trial,) = analysis.trials
    booster = _load_booster(library, trial.checkpoint)
    _, _, xv, yv = _data()
    assert log_loss(yv, predict(xv, booster)) == pytest.approx(trial.last_result["loss"], rel=1e-5)
    assert np.isfinite(trial.last_result["loss"])


@pytest.mark.parametrize("kwargs, match", [
    ({"metrics": 3}, "metrics"),
    ({"metrics": {"loss": 1}}, "metrics"),
    ({"frequency": -1}, "frequency"),
    ({"filename": "a/b.json"}, "filename"),
])
def test_bad_arguments_are_rejected_with_their_name(library, kwargs, match):
    module = importlib.import_module(f"asynctune.integrations.{library}")
    with pytest.raises(ValueError, match=match):
        module.TuneReportCheckpointCallback(**kwargs)
