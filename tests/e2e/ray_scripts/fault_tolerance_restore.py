"""Ray's fault-tolerance guide shape: no storage_path, an experiment name, a driver stopped with
Ctrl-C half-way, then Tuner.restore from "~/ray_results/<name>" (can_restore first)."""
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from asynctune.compat.ray import train, tune

NAME = "tune_fault_tolerance_guide"


def trainable(config):
    step = 0
    checkpoint = train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            step = json.load(open(os.path.join(d, "state.json")))["step"] + 1
    while step < 10:
        time.sleep(0.2)
        with tempfile.TemporaryDirectory() as d:
            json.dump({"step": step}, open(os.path.join(d, "state.json"), "w"))
            train.report({"score": step * config["x"], "resumed_at": step if checkpoint else -1},
                         checkpoint=train.Checkpoint.from_directory(d))
        step += 1


def first_run():
    tune.Tuner(trainable, param_space={"x": tune.grid_search([1, 2])},
               tune_config=tune.TuneConfig(metric="score", mode="max"),
               run_config=train.RunConfig(name=NAME, verbose=0)).fit()


if __name__ == "__main__":
    if sys.argv[1:] == ["--first"]:
        first_run()
        sys.exit(0)
    path = os.path.expanduser(f"~/ray_results/{NAME}")
    driver = subprocess.Popen([sys.executable, __file__, "--first"])
    deadline = time.time() + 60
    while len(glob.glob(os.path.join(path, "trial_*", "checkpoint_*"))) < 4 and time.time() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)  # the user presses Ctrl-C
    driver.wait(timeout=60)
    assert tune.Tuner.can_restore(path)
    tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    results = tuner.fit()
    assert results.num_errors == 0 and sorted(r.metrics["training_iteration"] for r in results) == [10, 10]
    assert all(r.metrics["resumed_at"] > 0 for r in results), [r.metrics for r in results]
    print(results.get_best_result().config)
    print("OK")
