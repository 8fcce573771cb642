"""Tune an SGD classifier on digits with ASHA; checkpoints via train.report."""
import json
import os
import pickle
import tempfile

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

import asynctune.compat.ray as ray
from asynctune.compat.ray import train, tune
from asynctune.compat.ray.train import Checkpoint
from asynctune.compat.ray.tune.schedulers import ASHAScheduler
from asynctune.compat.ray.tune.search import BasicVariantGenerator


def train_digits(config):
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    clf = SGDClassifier(alpha=config["alpha"], learning_rate="constant", eta0=config["eta0"], random_state=0)
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            with open(os.path.join(d, "model.pkl"), "rb") as f:
                clf = pickle.load(f)
            with open(os.path.join(d, "state.json")) as f:
                start = json.load(f)["epoch"] + 1
    for epoch in range(start, 10):
        clf.partial_fit(X_train, y_train, classes=np.arange(10))
        acc = clf.score(X_val, y_val)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "model.pkl"), "wb") as f:
                pickle.dump(clf, f)
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            train.report({"mean_accuracy": acc, "epoch": epoch}, checkpoint=Checkpoint.from_directory(d))


if __name__ == "__main__":
    ray.init(num_cpus=2)
    scheduler = ASHAScheduler(max_t=10, grace_period=2, reduction_factor=2)
    tuner = tune.Tuner(
        train_digits,
        param_space={"alpha": tune.loguniform(1e-5, 1e-1), "eta0": tune.uniform(0.001, 0.1)},
        tune_config=tune.TuneConfig(metric="mean_accuracy", mode="max", num_samples=6, scheduler=scheduler,
                                    search_alg=BasicVariantGenerator(random_state=1)),
        run_config=train.RunConfig(name="digits_asha", storage_path=os.environ["RESULTS"],
                                   checkpoint_config=train.CheckpointConfig(num_to_keep=2)),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print("best config", best.config, best.metrics["mean_accuracy"])
    assert best.metrics["mean_accuracy"] > 0.8
    assert best.checkpoint is not None
    with best.checkpoint.as_directory() as d:
        model = pickle.load(open(os.path.join(d, "model.pkl"), "rb"))
    print(type(model).__name__)
    df = results.get_dataframe()
    print(df[["mean_accuracy", "training_iteration", "config/alpha"]].sort_values("mean_accuracy"))
    assert len(df) == 6
    iters = sorted(r.metrics["training_iteration"] for r in results)
    print("iterations", iters)
    assert iters[0] < 10 and iters[-1] == 10
    print(best.metrics_dataframe[["training_iteration", "mean_accuracy"]].tail(2))
    print(best.path, results.experiment_path)
    assert best.path.startswith(results.experiment_path)
    for result in results:
        assert result.error is None
        assert "trial_id" in result.metrics and "time_total_s" in result.metrics and "done" in result.metrics
    print("OK")
