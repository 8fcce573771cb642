"""An older script: tune.run with Ray's searcher and scheduler names, Ray 1.x's session functions, a
callback that compares statuses with Trial's constants, a stop dict, and the 2.0-2.6 analysis API."""
import json
import os
import tempfile

import asynctune.compat.ray as ray
from asynctune.compat.ray import tune
from asynctune.compat.ray.tune import Callback
from asynctune.compat.ray.tune.experiment import Trial


def objective(step, width, height):
    return (0.1 + width * step / 100) ** (-1) + height * 0.1


class Easy(tune.Trainable):
    def setup(self, config):
        self.width, self.height = config["width"], config["height"]
        self.notes = os.path.join(self.logdir, f"{self.trial_name}.txt")

    def step(self):
        score = objective(self.iteration, self.width, self.height)
        with open(self.notes, "a") as f:
            f.write(f"{score}\n")
        return {"mean_loss": score}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "state.json"), "w") as f:
            json.dump({"iteration": self.iteration}, f)

    def load_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "state.json")) as f:
            assert json.load(f)["iteration"] >= 0


def easy_function(config):
    for step in range(10):
        score = objective(step, config["width"], config["height"])
        with tempfile.TemporaryDirectory() as d:
            tune.report({"mean_loss": score, "trial_dir": tune.get_trial_dir(), "name": tune.get_trial_name()},
                        checkpoint=tune.Checkpoint.from_directory(d))


class Counts(Callback):
    def __init__(self):
        self.ended = {}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = trial.status == Trial.TERMINATED

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = trial.status == Trial.ERROR


if __name__ == "__main__":
    ray.init(num_cpus=2)
    counts = Counts()
    analysis = tune.run(
        Easy, name="legacy_names", local_dir=os.environ["RESULTS"], metric="mean_loss", mode="min",
        config={"width": tune.uniform(10, 100), "height": tune.uniform(0, 100)}, num_samples=4,
        search_alg="variant_generator", scheduler="async_hyperband", stop={"training_iteration": 6},
        checkpoint_freq=2, keep_checkpoints_num=2, callbacks=[counts], reuse_actors=True, verbose=1)
    assert len(analysis.trials) == 4 and all(counts.ended.values()) and len(counts.ended) == 4
    best_dir = analysis.get_best_logdir("mean_loss", "min")
    assert best_dir == analysis.best_logdir == analysis.best_trial.path
    assert os.path.isfile(os.path.join(best_dir, f"{analysis.best_trial.trial_id}.txt"))
    paths = analysis.get_trial_checkpoints_paths(analysis.best_trial, "training_iteration")
    print("checkpoints", [(os.path.basename(p), i) for p, i in paths])
    assert [i for _, i in paths][-1] == analysis.best_trial.last_result["training_iteration"]

    model = Easy(config=analysis.best_config)  # outside a run: Ray's "default" trial
    assert model.trial_name == "default" and model.train()["mean_loss"] > 0
    model.stop()

    again = tune.run(easy_function, name="legacy_function", local_dir=os.environ["RESULTS"], metric="mean_loss",
                     mode="min", config={"width": tune.uniform(10, 100), "height": tune.uniform(0, 100)},
                     num_samples=2, scheduler="fifo", stop={"mean_loss": 1e9, "training_iteration": 4}, verbose=0)
    result = again.best_result
    assert result["trial_dir"] == again.best_trial.path and result["name"] == again.best_trial.trial_id
    assert result["training_iteration"] == 4
    print("best", again.best_config)
    print("OK")
