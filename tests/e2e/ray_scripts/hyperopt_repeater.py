"""HyperOptSearch on a Tune search space, wrapped in a Repeater (each config 2 times)."""
import os

import numpy as np

import asynctune.compat.ray as ray
from asynctune.compat.ray import tune
from asynctune.compat.ray.tune.search import Repeater
from asynctune.compat.ray.tune.search.hyperopt import HyperOptSearch


def noisy(config):
    rng = np.random.default_rng()
    for i in range(3):
        value = (config["x"] - 2) ** 2 + (config["y"] + 1) ** 2 + rng.normal(0, 0.01)
        tune.report({"score": value, "idx": config.get("__trial_index__")})


if __name__ == "__main__":
    ray.init(num_cpus=2)
    search = HyperOptSearch(points_to_evaluate=[{"x": 2.0, "y": 0.0}], n_initial_points=4, random_state_seed=1)
    search = Repeater(search, repeat=2)
    tuner = tune.Tuner(
        noisy,
        param_space={"x": tune.uniform(-5, 5), "y": tune.quniform(-3, 3, 0.5)},
        tune_config=tune.TuneConfig(search_alg=search, metric="score", mode="min", num_samples=8),
        run_config=tune.RunConfig(storage_path=os.environ["RESULTS"], verbose=0),
    )
    results = tuner.fit()
    configs = [tuple(sorted((k, v) for k, v in r.config.items() if k != "__trial_index__")) for r in results]
    print(configs)
    from collections import Counter
    counts = Counter(configs)
    print(counts)
    assert all(c == 2 for c in counts.values()), counts
    assert sorted(r.config["__trial_index__"] for r in results) == [0, 0, 0, 0, 1, 1, 1, 1]
    first = [r for r in results if r.config["x"] == 2.0]
    assert len(first) == 2
    print(results.get_best_result().config)
    print("OK")
