"""tune.run with a class Trainable, AsyncHyperBandScheduler, checkpoint_freq and checkpoint_at_end."""
import os
import pickle

import numpy as np

from asynctune.compat.ray import tune
from asynctune.compat.ray.tune.schedulers import AsyncHyperBandScheduler


class LinearModel(tune.Trainable):
    def setup(self, config):
        rng = np.random.default_rng(0)
        self.X = rng.normal(size=(200, 5))
        self.y = self.X @ np.arange(5) + rng.normal(0, 0.1, 200)
        self.w = np.zeros(5)
        self.lr = config["lr"]

    def step(self):
        grad = self.X.T @ (self.X @ self.w - self.y) / len(self.y)
        self.w -= self.lr * grad
        mse = float(np.mean((self.X @ self.w - self.y) ** 2))
        return {"mse": mse, "done": mse < 0.02}

    def save_checkpoint(self, checkpoint_dir):
        path = os.path.join(checkpoint_dir, "w.pkl")
        with open(path, "wb") as f:
            pickle.dump(self.w, f)

    def load_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "w.pkl"), "rb") as f:
            self.w = pickle.load(f)


if __name__ == "__main__":
    sched = AsyncHyperBandScheduler(time_attr="training_iteration", max_t=40, grace_period=5)
    analysis = tune.run(
        LinearModel,
        name="linear",
        storage_path=os.environ["RESULTS"],
        scheduler=sched,
        metric="mse",
        mode="min",
        stop={"training_iteration": 40},
        num_samples=6,
        config={"lr": tune.loguniform(1e-3, 0.5)},
        checkpoint_freq=5,
        checkpoint_at_end=True,
        verbose=0,
        raise_on_failed_trial=False,
        reuse_actors=True,
    )
    print("best", analysis.best_config, analysis.best_result["mse"])
    trial = analysis.get_best_trial("mse", "min", "last")
    assert trial.config == analysis.best_config
    ckpt = analysis.best_checkpoint
    print(ckpt)
    model = LinearModel(config=analysis.best_config)
    model.restore(ckpt)
    print(model.w)
    model.stop()
    assert len(analysis.trials) == 6 and not any(t.error for t in analysis.trials)
    standalone = LinearModel(config={"lr": 0.3})
    for _ in range(3):
        result = standalone.train()
    assert result["training_iteration"] == 3 and standalone.training_iteration == 3
    saved = standalone.save()
    copy = LinearModel(config={"lr": 0.3})
    copy.restore(saved)
    assert (copy.w == standalone.w).all()
    print(analysis.dataframe(metric="mse", mode="min")[["mse", "training_iteration"]])
    print("OK")
