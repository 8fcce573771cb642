"""A class Trainable with tune.with_parameters and with_resources(function), a nested param space,
sample_from with numpy, an error callback, a LoggerCallback and OptunaSearch define-by-run."""
import os
import tempfile

import numpy as np

from asynctune.compat.ray import train, tune
from asynctune.compat.ray.tune.logger import LoggerCallback
from asynctune.compat.ray.tune.search.optuna import OptunaSearch


class Model(tune.Trainable):
    def setup(self, config, data=None):
        self.data = data
        self.w = 0.0
        self.lr = config["optim"]["lr"]
        if config["optim"]["kind"] == "broken":
            raise ValueError("unknown optimizer")

    def step(self):
        self.w += self.lr * (self.data.mean() - self.w)
        return {"err": abs(self.data.mean() - self.w), "name": train.get_context().get_trial_name()}

    def save_checkpoint(self, checkpoint_dir):
        return {"w": self.w}

    def load_checkpoint(self, checkpoint):
        self.w = checkpoint["w"]


class Errors(tune.Callback):
    def __init__(self):
        self.failed = []

    def on_trial_error(self, iteration, trials, trial, **info):
        assert trial.status == "ERROR", trial.status
        self.failed.append(trial.config["optim"]["kind"])


class Lines(LoggerCallback):
    def __init__(self):
        self.n = 0

    def log_trial_result(self, iteration, trial, result):
        self.n += 1


if __name__ == "__main__":
    data = np.random.default_rng(0).normal(3.0, 1.0, 1000)
    errors, lines = Errors(), Lines()
    trainable = tune.with_resources(tune.with_parameters(Model, data=data),
                                    lambda config: {"cpu": 1})
    results = tune.Tuner(
        trainable,
        param_space={
            "optim": {"kind": tune.grid_search(["sgd", "broken"]),
                      "lr": tune.sample_from(lambda _: float(10 ** (-2 * np.random.rand())))},
            "seed": 0,
        },
        tune_config=tune.TuneConfig(metric="err", mode="min", num_samples=2),
        run_config=tune.RunConfig(storage_path=os.environ["RESULTS"], stop={"training_iteration": 5},
                                  callbacks=[errors, lines], verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2,
                                                                          checkpoint_at_end=True)),
    ).fit()
    assert len(results) == 4 and results.num_errors == 2
    assert errors.failed == ["broken", "broken"], errors.failed
    assert lines.n == 10, lines.n
    df = results.get_dataframe()
    assert "config/optim/lr" in df.columns and "config/optim/kind" in df.columns, list(df.columns)
    best = results.get_best_result()
    assert best.config["optim"]["kind"] == "sgd" and 0.01 <= best.config["optim"]["lr"] <= 1
    assert best.metrics["name"] == best.metrics["trial_id"]
    assert [c.path.rsplit("_", 1)[-1] for c, _ in best.best_checkpoints][-1].endswith("5")
    assert best.get_best_checkpoint("err", "min") is not None

    def objective(trial):
        kind = trial.suggest_categorical("kind", ["sgd", "adam"])
        if kind == "sgd":
            trial.suggest_float("momentum", 0.0, 0.9)
        trial.suggest_float("lr", 1e-3, 1.0, log=True)
        return {"seed": 1}

    def flat(config):
        for i in range(3):
            tune.report({"loss": (1 - config["lr"]) ** i + config.get("momentum", 0.5)})

    results = tune.Tuner(
        flat,
        tune_config=tune.TuneConfig(search_alg=OptunaSearch(space=objective, metric="loss", mode="min", seed=3),
                                    num_samples=6, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=os.environ["RESULTS"], verbose=0),
    ).fit()
    assert results.num_errors == 0 and len(results) == 6
    for r in results:
        assert ("momentum" in r.config) == (r.config["kind"] == "sgd") and r.config["seed"] == 1
    print(results.get_best_result("loss", "min").config)
    print("OK")
