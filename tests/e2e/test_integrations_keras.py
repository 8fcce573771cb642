"""Keras 3 callback in real trials: a tiny model built from its config, on whichever backend is installed."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import asynctune as at
from tests.helpers.integration_faults import die_once_after_a_checkpoint

if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
    # Keras defaults to TensorFlow; without it, use torch (or jax). The trials' workers inherit this.
    for backend in ("torch", "jax"):
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            break
keras = pytest.importorskip("keras", reason="keras is not installed (pip install 'asynctune[keras]' and a backend)")
if int(keras.__version__.split(".")[0]) < 3:
    pytest.skip(f"Keras 3 is needed, found {keras.__version__}", allow_module_level=True)

from asynctune.integrations.keras import TuneReportCheckpointCallback, load_checkpoint  # noqa: E402

EPOCHS = 5


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32") > 0).astype("float32")
    return x, y


def _train(config):
    import keras

    if config.get("die"):
        die_once_after_a_checkpoint(after_iteration=2)
    keras.utils.set_random_seed(0)
    model, initial_epoch = load_checkpoint()
    if model is None:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(config["units"], activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(config["lr"]), loss="binary_crossentropy", metrics=["accuracy"])
    x, y = _data()
    model.fit(x[:64], y[:64], validation_data=(x[64:], y[64:]), epochs=EPOCHS, initial_epoch=initial_epoch,
              batch_size=16, verbose=0, callbacks=[TuneReportCheckpointCallback(
                  {"loss": "val_loss", "accuracy": "val_accuracy"}, frequency=config.get("frequency", 1))])


def test_each_epoch_is_a_result_and_the_checkpoint_is_that_epochs_model(storage):
    analysis = at.run(_train, config={"units": at.grid_search([4, 8]), "lr": 0.01}, metric="loss", mode="min",
                      storage_path=storage, verbose=0)
    x, y = _data()
    for trial in analysis.trials:
        results = analysis.trial_results(trial.trial_id)
        assert [r["training_iteration"] for r in results] == list(range(1, EPOCHS + 1))
        model, epoch = load_checkpoint(os.path.join(trial.path, "checkpoint_000003"))
        assert epoch == 3
        loss, _ = model.evaluate(x[64:], y[64:], verbose=0)
        assert loss == pytest.approx(results[2]["loss"], rel=1e-4)


def test_a_trial_whose_worker_dies_goes_on_from_the_saved_epoch(storage):
    analysis = at.run(_train, config={"units": 4, "lr": 0.01, "die": True}, metric="loss", mode="min",
                      storage_path=storage, max_failures=1, verbose=0)
    reference = at.run(_train, config={"units": 4, "lr": 0.01}, metric="loss", mode="min", storage_path=storage,
                       verbose=0)
    (trial,), (whole,) = analysis.trials, reference.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    results = analysis.trial_results(trial.trial_id)
    assert [r["training_iteration"] for r in results] == list(range(1, EPOCHS + 1))
    # Training went on from the saved model: epoch 3 after the crash is the uninterrupted run's
    # epoch 3 (up to the batches' shuffling), not a new start.
    resumed, whole_run = results[2]["loss"], [r["loss"] for r in reference.trial_results(whole.trial_id)]
    assert abs(resumed - whole_run[2]) < abs(resumed - whole_run[0])


@pytest.mark.parametrize("kwargs, match", [({"on": "epoch"}, "on must be"), ({"frequency": -2}, "frequency"),
                                           ({"filename": "model.h5"}, ".keras"), ({"metrics": {}}, "metrics")])
def test_bad_arguments_are_rejected_with_their_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TuneReportCheckpointCallback(**kwargs)
