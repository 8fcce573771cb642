"""Bad input to run() gets a clear error that names the problem, before any trial starts."""

from __future__ import annotations

import os
import threading

import pytest

import asynctune as at


def train(config):
    at.report(loss=1.0)


def _no_trial_started(storage):
    """No experiment directory holds a trial directory."""
    if not os.path.exists(storage):
        return True
    return not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


BAD = {
    "mode not min/max": (dict(metric="loss", mode="maximum"), "mode must be 'min' or 'max'"),
    "metric without mode": (dict(metric="loss"), "pass both metric= and mode="),
    "num_samples zero": (dict(num_samples=0), "num_samples must be >= 1"),
    "num_samples float": (dict(num_samples=2.5), "num_samples must be an integer"),
    "max_concurrent zero": (dict(max_concurrent_trials=0), "max_concurrent_trials must be an integer >= 1"),
    "negative budget": (dict(time_budget_s=-1), "time_budget_s must be a positive"),
    "bad stop": (dict(stop=42), "stop must be a dict"),
    "stop threshold not a number": (dict(stop={"loss": "low"}), "threshold for 'loss' must be a number"),
    "bad search_alg": (dict(search_alg="tpe"), "search_alg must be an asynctune Searcher"),
    "bad scheduler": (dict(scheduler=object()), "scheduler must be an asynctune Scheduler"),
    "unknown resource": (dict(resources_per_trial={"tpu": 1}), "unknown keys \\['tpu'\\]"),
    "negative cpu": (dict(resources_per_trial={"cpu": -1}), "cpu must be >= 0"),
    "resources larger than the machine": (dict(resources_per_trial={"cpu": 10_000}), "can never fit on any host"),
    "gpu on a machine without": (dict(resources_per_trial={"gpu": 1}, executor=at.LocalExecutor(cpus=2)), None),
    "bad verbose": (dict(verbose=7), "verbose must be"),
    "bad name": (dict(name="a/b"), "name must be a plain directory name"),
    "bad space": (dict(config=[1, 2]), "config must be a dict"),
    "bad executor": (dict(executor="local"), "executor must be an asynctune Executor"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_arguments_fail_before_any_trial(case, storage):
    kwargs, message = BAD[case]
    from asynctune.core.gpu import probe_gpus
    if case == "gpu on a machine without":
        if probe_gpus():
            pytest.skip("this machine has a GPU")
        message = "can never fit on any host"
    with pytest.raises(ValueError, match=message):
        at.run(train, storage_path=storage, **{"verbose": 0, **kwargs})
    assert _no_trial_started(storage)


def test_unpicklable_trainable_is_named(storage):
    local_lock = threading.Lock()

    def closes_over_a_lock(config):
        with local_lock:
            at.report(loss=1)

    with pytest.raises(ValueError, match="'closes_over_a_lock' cannot be pickled.*lock"):
        at.run(closes_over_a_lock, storage_path=storage, verbose=0)
    assert _no_trial_started(storage)


def test_not_a_trainable(storage):
    with pytest.raises(ValueError, match="trainable must be a function"):
        at.run(42, storage_path=storage, verbose=0)
    with pytest.raises(ValueError, match="must subclass asynctune.Trainable"):
        at.run(dict, storage_path=storage, verbose=0)


def test_storage_path_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="storage_path .* cannot be written"):
        at.run(train, storage_path=str(blocker / "sub"), verbose=0)


def test_invalid_space_fails_before_any_trial(storage):
    with pytest.raises(at.SearchSpaceError, match="cycle"):
        at.run(train, config={"a": at.sample_from(lambda c: c["a"])}, storage_path=storage, verbose=0)
    assert _no_trial_started(storage)


def test_report_outside_a_trial_says_so():
    with pytest.raises(at.AsynctuneError, match="only be called inside a trial"):
        at.report(loss=1)
    with pytest.raises(at.AsynctuneError, match="inside a trial"):
        at.get_checkpoint()


def test_analysis_of_a_wrong_directory(tmp_path):
    with pytest.raises(ValueError, match="not an asynctune experiment directory"):
        at.ExperimentAnalysis(str(tmp_path))
    (tmp_path / "experiment.json").write_text("{half")
    with pytest.raises(ValueError, match="corrupted"):
        at.ExperimentAnalysis(str(tmp_path))


def test_analysis_needs_a_metric(storage):
    analysis = at.run(train, storage_path=storage, verbose=0)
    with pytest.raises(ValueError, match="pass metric= and mode="):
        analysis.best_config
    assert analysis.get_best_trial("loss", "min") is analysis.trials[0]
    with pytest.raises(ValueError, match="scope must be one of"):
        analysis.get_best_trial("loss", "min", scope="best")


def test_non_finite_metrics_count_as_missing_for_the_best(storage):
    def nan_for_one(config):
        at.report(loss=float("nan") if config["x"] == 0 else float(config["x"]))

    analysis = at.run(nan_for_one, config={"x": at.grid_search([0, 1, 2])}, metric="loss", mode="min",
                      storage_path=storage, verbose=0)
    assert analysis.best_config == {"x": 1}
    assert {t.config["x"]: t.status for t in analysis.trials}[0] is at.Status.TERMINATED
