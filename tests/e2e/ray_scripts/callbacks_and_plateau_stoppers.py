"""Custom tune.Callback, plateau and combined stoppers."""
import os

import asynctune.compat.ray as ray
from asynctune.compat.ray import tune
from asynctune.compat.ray.tune import Callback
from asynctune.compat.ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from asynctune.compat.ray.tune.stopper import (
    CombinedStopper, MaximumIterationStopper, TrialPlateauStopper,
)


class MyCallback(Callback):
    def __init__(self):
        self.results = {}
        self.completed = []
        self.started = []
        self.ended = False

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.append(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.setdefault(trial.trial_id, []).append(result["metric"])
        print(f"Got result: {result['metric']} for {trial.trial_id} config {trial.config}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed.append(trial.trial_id)

    def on_experiment_end(self, trials, **info):
        self.ended = True
        print("experiment end", len(trials), [t.status for t in trials])
        self.statuses = [t.status for t in trials]


def train_fn(config):
    for i in range(100):
        # converges to a plateau
        tune.report({"metric": round(config["a"] * (1 - 0.5 ** i), 3)})


if __name__ == "__main__":
    cb = MyCallback()
    stopper = CombinedStopper(
        MaximumIterationStopper(max_iter=30),
        TrialPlateauStopper(metric="metric", std=0.001, num_results=4, grace_period=4),
    )
    tuner = tune.Tuner(
        train_fn,
        param_space={"a": tune.grid_search([1, 2, 3])},
        run_config=tune.RunConfig(stop=stopper, callbacks=[cb, CSVLoggerCallback(), JsonLoggerCallback()],
                                  storage_path=os.environ["RESULTS"], verbose=0),
    )
    results = tuner.fit()
    # callbacks run in the driver: the instance we passed saw everything
    assert cb.ended and cb.statuses == ["TERMINATED"] * 3, cb.statuses
    assert sorted(cb.started) == sorted(cb.completed) and len(cb.completed) == 3
    for r in results:
        assert os.path.exists(os.path.join(r.path, "progress.csv"))
        n = r.metrics["training_iteration"]
        print(r.config, n)
        assert 4 <= n < 30, n
    # a plain function stopper
    def stop_fn(trial_id, result):
        return result["metric"] >= 1.5
    results = tune.Tuner(
        train_fn, param_space={"a": 2},
        run_config=tune.RunConfig(stop=stop_fn, storage_path=os.environ["RESULTS"], verbose=0),
    ).fit()
    assert results[0].metrics["metric"] >= 1.5 and results[0].metrics["training_iteration"] == 3, results[0].metrics
    # the whole experiment ends once the best values agree
    from asynctune.compat.ray.tune.stopper import ExperimentPlateauStopper
    results = tune.Tuner(
        train_fn, param_space={"a": tune.grid_search([1, 1, 1, 1])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(stop=ExperimentPlateauStopper("metric", top=3, mode="max"),
                                  storage_path=os.environ["RESULTS"], verbose=0),
    ).fit()
    iterations = [r.metrics.get("training_iteration") for r in results]
    print("experiment plateau", iterations)
    assert iterations[0] < 100 and len([i for i in iterations if i]) == 1, iterations
    print("OK")
