"""PBT over a class trainable with hyperparam_mutations and reset_config."""
import os
import random

import numpy as np

import asynctune.compat.ray as ray
from asynctune.compat.ray import tune
from asynctune.compat.ray.tune.schedulers import PopulationBasedTraining


class Quadratic(tune.Trainable):
    def setup(self, config):
        self.lr = config["lr"]
        self.momentum = config["momentum"]
        self.x = 5.0
        self.v = 0.0

    def step(self):
        for _ in range(5):
            grad = 2 * self.x
            self.v = self.momentum * self.v - self.lr * grad
            self.x += self.v
        return {"loss": self.x ** 2, "lr": self.lr}

    def save_checkpoint(self, checkpoint_dir):
        np.save(os.path.join(checkpoint_dir, "state.npy"), np.array([self.x, self.v]))
        return checkpoint_dir

    def load_checkpoint(self, checkpoint_dir):
        self.x, self.v = np.load(os.path.join(checkpoint_dir, "state.npy"))

    def reset_config(self, new_config):
        self.lr = new_config["lr"]
        self.momentum = new_config["momentum"]
        self.config = new_config
        return True


if __name__ == "__main__":
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_mutations={
            "lr": tune.loguniform(1e-4, 0.2),
            "momentum": [0.0, 0.5, 0.9],
        },
    )
    tuner = tune.Tuner(
        Quadratic,
        param_space={"lr": tune.loguniform(1e-4, 0.2), "momentum": tune.choice([0.0, 0.5, 0.9])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=pbt, num_samples=4, reuse_actors=True),
        run_config=tune.RunConfig(
            name="pbt_quad", storage_path=os.environ["RESULTS"], stop={"training_iteration": 8},
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2, checkpoint_at_end=True, num_to_keep=4),
            verbose=1,
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(best.config, best.metrics["loss"])
    assert all(r.metrics["training_iteration"] == 8 for r in results)
    assert best.checkpoint is not None
    restored = Quadratic(config=best.config)
    restored.restore(best.checkpoint)
    print("restored x", restored.x)
    restored.stop()
    print("OK")
