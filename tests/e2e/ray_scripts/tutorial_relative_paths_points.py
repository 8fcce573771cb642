"""Ray's getting-started shape: a numpy linear model saved with relative paths (Ray runs each trial in
its own directory), warm-start points for the default searcher, ASHA, and the results read back as
DataFrames with Ray's column names and checkpoint metadata."""
import os

import numpy as np

import asynctune.compat.ray as ray
from asynctune.compat.ray import train, tune
from asynctune.compat.ray.train import Checkpoint
from asynctune.compat.ray.tune.schedulers import ASHAScheduler
from asynctune.compat.ray.tune.search import BasicVariantGenerator

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4))
Y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=200)


def train_linear(config, data):
    x, y = data
    weights, start = np.zeros(4), 0
    checkpoint = train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            weights = np.load(os.path.join(d, "weights.npy"))
        start = checkpoint.get_metadata()["epoch"] + 1
    for epoch in range(start, 8):
        gradient = 2 * x.T @ (x @ weights - y) / len(y)
        weights = weights - config["lr"] * gradient
        loss = float(np.mean((x @ weights - y) ** 2))
        np.save("./model.npy", weights)  # "This saves the model to the trial directory"
        os.makedirs("my_model", exist_ok=True)
        np.save("my_model/weights.npy", weights)
        checkpoint = Checkpoint.from_directory("my_model")
        checkpoint.set_metadata({"epoch": epoch})
        train.report({"loss": loss, "grad": {"norm": float(np.linalg.norm(gradient))}}, checkpoint=checkpoint)


if __name__ == "__main__":
    ray.init(num_cpus=2)
    launched_from = os.getcwd()
    searcher = BasicVariantGenerator(points_to_evaluate=[{"lr": 0.1}, {"lr": 0.001}], random_state=2)
    tuner = tune.Tuner(
        tune.with_parameters(train_linear, data=(X, Y)),
        param_space={"lr": tune.loguniform(1e-3, 0.2), "batch": tune.grid_search([16, 32])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=3, search_alg=searcher,
                                    scheduler=ASHAScheduler(max_t=8, grace_period=2)),
        run_config=train.RunConfig(name="linear", storage_path=os.environ["RESULTS"],
                                   checkpoint_config=train.CheckpointConfig(num_to_keep=1)),
    )
    results = tuner.fit()
    # 3 samples of a 2-value grid: the 2 points replace the first 2 samples, each run on both grid values
    assert len(results) == 6, len(results)
    assert sorted(r.config["lr"] for r in results)[-2:] == [0.1, 0.1]
    assert os.getcwd() == launched_from and not os.path.exists(os.path.join(launched_from, "my_model"))
    frame = results.get_dataframe()
    for column in ("loss", "grad/norm", "config/lr", "config/batch", "training_iteration", "trial_id", "logdir"):
        assert column in frame.columns, (column, list(frame.columns))
    best = results.get_best_result()
    print("best config", best.config, best.metrics["loss"])
    assert best.config["lr"] == 0.1 and best.metrics["training_iteration"] == 8
    history = best.metrics_dataframe
    assert list(history["training_iteration"]) == list(range(1, 9)) and "config/lr" in history.columns
    with best.checkpoint.as_directory() as d:
        weights = np.load(os.path.join(d, "weights.npy"))
    assert best.checkpoint.get_metadata() == {"epoch": 7}
    assert np.array_equal(weights, np.load(os.path.join(best.path, "model.npy")))  # the trial's own file
    print(np.round(weights, 2))
    print("OK")
