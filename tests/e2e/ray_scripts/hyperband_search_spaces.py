"""HyperBandScheduler with a rich search space (sample_from, randn, qrandint, lograndint, grid)."""
import os

import numpy as np

import asynctune.compat.ray as ray
from asynctune.compat.ray import tune
from asynctune.compat.ray.tune.schedulers import HyperBandScheduler, MedianStoppingRule


def trainable(config):
    assert isinstance(config["layers"], int) and 1 <= config["layers"] <= 4
    assert config["units"] % 16 == 0 and 16 <= config["units"] <= 128
    assert 1 <= config["batch"] < 512
    assert config["lr2"] == config["lr"] * 2
    assert config["opt"] in ("sgd", "adam")
    for i in range(1, 28):
        tune.report({"acc": 1 - 1 / (i * config["lr"] * 100 + 1) + config["noise"] * 0.001 + config["layers"] * 0.001})


if __name__ == "__main__":
    ray.init(num_cpus=2)
    space = {
        "lr": tune.loguniform(1e-4, 1e-1),
        "lr2": tune.sample_from(lambda spec: spec.config.lr * 2),
        "layers": tune.randint(1, 5),
        "units": tune.qrandint(16, 128, 16),
        "batch": tune.lograndint(1, 512),
        "noise": tune.randn(0, 1),
        "opt": tune.grid_search(["sgd", "adam"]),
    }
    hb = HyperBandScheduler(time_attr="training_iteration", max_t=27, reduction_factor=3)
    results = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=hb, num_samples=3),
        run_config=tune.RunConfig(storage_path=os.environ["RESULTS"], verbose=0),
    ).fit()
    assert len(results) == 6 and results.num_errors == 0, results.errors
    its = sorted(r.metrics["training_iteration"] for r in results)
    print("hyperband iterations", its)
    assert its[-1] == 27
    msr = MedianStoppingRule(time_attr="training_iteration", grace_period=3, min_samples_required=2)
    results = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric="acc", mode="max", scheduler=msr, num_samples=2,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=os.environ["RESULTS"], verbose=0),
    ).fit()
    print("median iterations", sorted(r.metrics["training_iteration"] for r in results))
    assert results.num_errors == 0
    print("OK")
