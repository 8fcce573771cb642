"""FailureConfig retries, errored trials in the ResultGrid, and Tuner.restore(resume_errored=True) with
a fixed trainable."""
import json
import os
import tempfile

from asynctune.compat.ray import train, tune

MARKERS = os.path.join(os.environ["RESULTS"], "markers")


def train_loop(config, buggy):
    start = 0
    ckpt = train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            start = json.load(open(os.path.join(d, "s.json")))["step"] + 1
    for step in range(start, 6):
        marker = os.path.join(MARKERS, f"{config['id']}-{step}")
        if step == 3 and config["id"] == 0 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("transient")  # trial 0 fails once: retried by max_failures
        if step == 3 and config["id"] == 2 and buggy:
            raise RuntimeError("a bug")  # trial 2 fails until the bug is fixed
        with tempfile.TemporaryDirectory() as d:
            json.dump({"step": step}, open(os.path.join(d, "s.json"), "w"))
            train.report({"loss": 10 - step - config["id"], "start": start},
                         checkpoint=train.Checkpoint.from_directory(d))


def flaky(config):
    train_loop(config, buggy=True)


def fixed(config):
    train_loop(config, buggy=False)


if __name__ == "__main__":
    os.makedirs(MARKERS, exist_ok=True)
    tuner = tune.Tuner(
        flaky,
        param_space={"id": tune.grid_search([0, 1, 2])},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=train.RunConfig(name="flaky", storage_path=os.environ["RESULTS"],
                                   failure_config=train.FailureConfig(max_failures=1), verbose=0),
    )
    results = tuner.fit()
    print("errors", results.num_errors, [str(e)[:80] for e in results.errors])
    assert results.num_errors == 1
    errored = [r for r in results if r.error is not None]
    assert errored[0].config["id"] == 2 and "a bug" in str(errored[0].error)
    ok0 = [r for r in results if r.config["id"] == 0][0]
    assert ok0.metrics["training_iteration"] == 6 and ok0.metrics["start"] == 3, ok0.metrics
    assert results.get_best_result().config["id"] == 1
    path = results.experiment_path
    assert tune.Tuner.can_restore(path)
    restored = tune.Tuner.restore(path, trainable=fixed, resume_errored=True)
    results = restored.fit()
    assert results.num_errors == 0, results.errors
    r2 = [r for r in results if r.config["id"] == 2][0]
    print(r2.metrics)
    assert r2.metrics["training_iteration"] == 6 and r2.metrics["start"] == 3
    assert list(r2.metrics_dataframe["training_iteration"]) == [1, 2, 3, 4, 5, 6]
    assert results.get_best_result().config["id"] == 2
    print("OK")
