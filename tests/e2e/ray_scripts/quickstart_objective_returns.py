"""Ray Tune's quick-start shape: an objective that returns its score, a grid and a choice."""
import os

from asynctune.compat.ray import train, tune


def objective(config):
    score = (config["a"] - 0.1) ** 2 + config["b"]
    return {"score": score}


def bare_number(config):
    return config["a"] * 10


if __name__ == "__main__":
    search_space = {"a": tune.grid_search([0.001, 0.01, 0.1, 1.0]), "b": tune.choice([1, 2, 3])}
    tuner = tune.Tuner(objective, param_space=search_space,
                       run_config=train.RunConfig(storage_path=os.environ["RESULTS"], verbose=0))
    results = tuner.fit()
    best = results.get_best_result(metric="score", mode="min")
    print(best.config)
    assert best.metrics["score"] == min(r.metrics["score"] for r in results)
    assert best.metrics["score"] == (best.config["a"] - 0.1) ** 2 + best.config["b"]
    assert len(results) == 4 and all(r.metrics["training_iteration"] == 1 for r in results)
    results = tune.Tuner(bare_number, param_space={"a": tune.grid_search([1, 2])},
                         run_config=train.RunConfig(storage_path=os.environ["RESULTS"], verbose=0)).fit()
    assert sorted(r.metrics["_metric"] for r in results) == [10, 20]
    print("OK")
