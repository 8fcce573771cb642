"""PBT with a function trainable that checkpoints every step (Ray's PBT guide style)."""
import json
import os
import tempfile

from asynctune.compat.ray import train, tune
from asynctune.compat.ray.tune.schedulers import PopulationBasedTraining


def pbt_fn(config):
    step, accuracy = 1, 0.0
    checkpoint = train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "data.json")) as f:
                state = json.load(f)
            step, accuracy = state["step"] + 1, state["acc"]
    while True:
        accuracy += config["lr"] * (1 - accuracy) * (0.5 if config["lr"] > 0.3 else 1)
        metrics = {"mean_accuracy": accuracy, "cur_lr": config["lr"], "step": step}
        if step % config["checkpoint_interval"] == 0:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "data.json"), "w") as f:
                    json.dump({"step": step, "acc": accuracy}, f)
                train.report(metrics, checkpoint=train.Checkpoint.from_directory(d))
        else:
            train.report(metrics)
        step += 1


if __name__ == "__main__":
    perturbation_interval = 2
    scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=perturbation_interval,
        hyperparam_mutations={"lr": tune.uniform(0.0001, 0.5)},
    )
    tuner = tune.Tuner(
        pbt_fn,
        run_config=tune.RunConfig(
            name="pbt_fn", storage_path=os.environ["RESULTS"], verbose=0,
            stop={"mean_accuracy": 0.99, "training_iteration": 12},
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_score_attribute="mean_accuracy", num_to_keep=3),
        ),
        tune_config=tune.TuneConfig(scheduler=scheduler, metric="mean_accuracy", mode="max", num_samples=4),
        param_space={"lr": tune.uniform(0.001, 0.5), "checkpoint_interval": perturbation_interval},
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(best.config, best.metrics["mean_accuracy"])
    assert results.num_errors == 0
    assert best.metrics["mean_accuracy"] > 0.8
    # read back later, as a user would in another process
    restored = tune.Tuner.restore(results.experiment_path, trainable=pbt_fn)
    again = restored.get_results()
    assert again.get_best_result().config == best.config
    analysis = tune.ExperimentAnalysis(results.experiment_path)
    print(analysis.get_best_config(metric="mean_accuracy", mode="max"))
    print("OK")
