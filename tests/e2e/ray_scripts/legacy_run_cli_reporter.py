"""Legacy tune.run with a CLIReporter, resources_per_trial and ExperimentAnalysis."""
import os
import tempfile
import json

import numpy as np

from asynctune.compat.ray import tune
from asynctune.compat.ray.tune import CLIReporter


def objective(step, width, height):
    return (0.1 + width * step / 100) ** (-1) + height * 0.1


def easy_objective(config):
    width, height = config["width"], config["height"]
    for step in range(config["steps"]):
        intermediate_score = objective(step, width, height)
        if step % 3 == 2:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "ckpt.json"), "w") as f:
                    json.dump({"step": step}, f)
                tune.report({"iterations": step, "mean_loss": intermediate_score},
                            checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report({"iterations": step, "mean_loss": intermediate_score})


if __name__ == "__main__":
    reporter = CLIReporter(max_progress_rows=10)
    reporter.add_metric_column("mean_loss")
    analysis = tune.run(
        easy_objective,
        name="legacy",
        storage_path=os.environ["RESULTS"],
        metric="mean_loss",
        mode="min",
        num_samples=4,
        stop={"training_iteration": 9},
        resources_per_trial={"cpu": 1},
        config={"steps": 20, "width": tune.uniform(0, 20), "height": tune.uniform(-100, 100)},
        progress_reporter=reporter,
        keep_checkpoints_num=2,
        checkpoint_score_attr="min-mean_loss",
        verbose=1,
    )
    print("Best hyperparameters found were: ", analysis.best_config)
    best_trial = analysis.best_trial
    print(best_trial.config, best_trial.last_result["mean_loss"])
    assert best_trial.last_result["training_iteration"] == 9
    df = analysis.dataframe()
    print(df[["mean_loss", "config/width"]])
    assert len(df) == 4
    dfs = analysis.trial_dataframes
    assert len(dfs) == 4
    for logdir, frame in dfs.items():
        assert len(frame) == 9, (logdir, len(frame))
    ckpt = analysis.get_best_checkpoint(best_trial, metric="mean_loss", mode="min")
    print("best checkpoint", ckpt)
    with ckpt.as_directory() as d:
        print(json.load(open(os.path.join(d, "ckpt.json"))))
    print(analysis.best_checkpoint, analysis.best_logdir)
    print(analysis.best_result["mean_loss"], analysis.results_df.shape)
    print("OK")
