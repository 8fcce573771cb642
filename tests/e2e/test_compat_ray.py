"""asynctune.compat.ray: Ray Tune scripts run after changing only their imports. Each test uses an
API the way Ray Tune's documentation shows it, on a real run with worker processes."""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time

import cloudpickle
import pytest

import asynctune as at
import asynctune.compat.ray as ray
from asynctune.compat.ray import train, tune
from asynctune.compat.ray._unsupported import UnsupportedRayFeature

from tests.helpers.compat_ray_helpers import two_cpus  # noqa: F401  (autouse: ray.init(num_cpus=2) around each test)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module


def run_config(storage: str, **kwargs) -> tune.RunConfig:
    return tune.RunConfig(storage_path=storage, verbose=0, **kwargs)


def curve(config: dict) -> None:
    """Losses config["losses"], one per step: lets a test choose each trial's history."""
    for loss in config["losses"]:
        tune.report({"loss": loss})


def test_tuner_fit_and_the_result_grid(storage):
    tuner = tune.Tuner(curve, param_space={"losses": tune.grid_search([[3.0, 1.0, 5.0], [2.0, 2.0, 2.0]])},
                       tune_config=tune.TuneConfig(metric="loss", mode="min"), run_config=run_config(storage))
    results = tuner.fit()
    assert len(results) == 2 and results.num_errors == 0 and results.num_terminated == 2 and not results.errors
    best = results.get_best_result()  # Ray's default scope "last": 2.0 beats the trial that ended at 5.0
    assert best.config == {"losses": [2.0, 2.0, 2.0]} and best.metrics["loss"] == 2.0
    assert best.metrics["config"] == best.config and best.metrics["training_iteration"] == 3
    assert best.metrics["done"] is True  # Ray marks the final result
    assert results.get_best_result(scope="all").config == {"losses": [3.0, 1.0, 5.0]}
    assert results.get_best_result(metric="loss", mode="max").metrics["loss"] == 5.0
    assert os.path.isdir(best.path) and best.error is None and best.checkpoint is None
    assert [r.config for r in results] == [results[0].config, results[1].config]
    assert list(best.metrics_dataframe["loss"]) == [2.0, 2.0, 2.0]
    frame = results.get_dataframe()
    assert sorted(frame["loss"]) == [2.0, 5.0]
    assert sorted(results.get_dataframe(filter_metric="loss", filter_mode="min")["loss"]) == [1.0, 2.0]
    assert tuner.get_results()[0].config == results[0].config
    assert results.experiment_path.startswith(storage)


def nested(config: dict) -> None:
    for step in range(1, 4):
        tune.report({"loss": config["opt"]["lr"] / step, "val": {"acc": step / 10}})


def test_frames_have_rays_column_names_nested_values_joined_by_slashes(storage):
    results = tune.Tuner(nested, param_space={"opt": {"lr": tune.grid_search([1.0, 2.0])}},
                         run_config=run_config(storage)).fit()
    frame = results.get_dataframe()
    for column in ("loss", "val/acc", "config/opt/lr", "training_iteration", "time_total_s", "trial_id", "logdir"):
        assert column in frame.columns, (column, list(frame.columns))
    assert sorted(frame["config/opt/lr"]) == [1.0, 2.0] and list(frame["val/acc"]) == [0.3, 0.3]
    assert sorted(results.get_dataframe(filter_metric="val/acc", filter_mode="min")["val/acc"]) == [0.1, 0.1]
    history = results[0].metrics_dataframe  # Ray's: every result, with its config
    assert list(history["val/acc"]) == [0.1, 0.2, 0.3] and list(history["config/opt/lr"]) == [1.0, 1.0, 1.0]
    assert list(history["training_iteration"]) == [1, 2, 3]
    assert results[0].metrics["val"] == {"acc": 0.3}  # Result.metrics stays nested, as in Ray
    analysis = tune.ExperimentAnalysis(results.experiment_path)
    assert list(analysis.trial_dataframes[results[0].metrics["trial_id"]]["val/acc"]) == [0.1, 0.2, 0.3]
    assert "val/acc" in analysis.dataframe().columns and "val/acc" in analysis.results_df.columns
    assert list(analysis.dataframe(metric="loss", mode="min")["val/acc"]) == [0.3, 0.3]


def nested_loss(config: dict) -> None:
    for step in range(1, 4):
        tune.report({"val": {"loss": config["opt"]["lr"] / step}})


class _NestedSteps(tune.Trainable):
    def step(self):
        return {"val": {"loss": self.config["opt"]["lr"] / (self.iteration + 1)}}


def test_a_nested_metric_is_named_with_a_slash_as_ray_flattens_results(storage):
    # Ray's schedulers, searchers, stoppers and best-result see {"val": {"loss": x}} as val/loss too
    space = {"opt": {"lr": tune.grid_search([1.0, 2.0])}}
    for trainable in (nested_loss, _NestedSteps):
        results = tune.Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(
            metric="val/loss", mode="min", scheduler=tune.schedulers.ASHAScheduler(max_t=3, grace_period=1)),
            run_config=run_config(storage, stop={"val/loss": 1.9, "training_iteration": 3})).fit()
        assert results.num_errors == 0, results.errors
        assert results.get_best_result().config == {"opt": {"lr": 1.0}}
        assert results.get_best_result().metrics["val"]["loss"] == pytest.approx(1 / 3)  # still nested, as in Ray
        stopped = results[1].metrics_dataframe  # lr=2.0: 2.0 >= 1.9 at once (Ray's stop rule)
        assert list(stopped["training_iteration"]) == [1]


def resumable(config: dict) -> None:
    """Counts to 4, with a checkpoint each step; fails once at step 2 (a marker file remembers)."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            with open(os.path.join(directory, "state.json")) as f:
                start = json.load(f)["step"]
    marker = os.path.join(tune.get_context().get_trial_dir(), "failed_once")
    for step in range(start, 4):
        if step == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("failing once on purpose")
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "state.json"), "w") as f:
                json.dump({"step": step + 1}, f)
            tune.report({"step": step + 1, "started_at": start},
                        checkpoint=tune.Checkpoint.from_directory(directory))


def test_checkpoints_from_directory_and_get_checkpoint_resume_a_retried_trial(storage, tmp_path):
    results = tune.Tuner(resumable, run_config=run_config(storage, failure_config=tune.FailureConfig(max_failures=1)),
                         tune_config=tune.TuneConfig(metric="step", mode="max")).fit()
    result = results[0]
    assert result.error is None
    assert result.metrics["step"] == 4 and result.metrics["started_at"] == 2  # resumed from step 2's checkpoint
    with result.checkpoint.as_directory() as directory:
        with open(os.path.join(directory, "state.json")) as f:
            assert json.load(f) == {"step": 4}
    copy = result.checkpoint.to_directory(str(tmp_path / "copy"))
    with open(os.path.join(copy, "state.json")) as f:
        assert json.load(f) == {"step": 4}
    assert result.get_best_checkpoint("step", "max") == result.checkpoint


def test_failed_trials_do_not_raise_and_are_in_errors(storage):
    def broken(config):
        tune.report({"loss": 1.0})
        raise ValueError("broken on purpose")

    results = tune.Tuner(broken, tune_config=tune.TuneConfig(num_samples=2),
                         run_config=run_config(storage)).fit()
    assert results.num_errors == 2 and len(results.errors) == 2
    assert "broken on purpose" in str(results.errors[0]) and isinstance(results[0].error, at.TrialFailed)
    assert results[0].metrics["done"] is False
    with pytest.raises(at.TrialFailed, match="broken on purpose"):
        tune.Tuner(broken, run_config=run_config(storage, failure_config=tune.FailureConfig(fail_fast="raise"))).fit()


def scored(config: dict) -> None:
    for accuracy in (0.5, 0.9, 0.7, 0.6, 0.8):
        with tempfile.TemporaryDirectory() as directory:
            open(os.path.join(directory, "weights"), "w").close()
            tune.report({"accuracy": accuracy}, checkpoint=tune.Checkpoint.from_directory(directory))


def test_checkpoint_config_keeps_the_best_by_score_attribute_and_the_latest(storage):
    keep = tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="accuracy", checkpoint_score_order="max")
    result = tune.Tuner(scored, run_config=run_config(storage, checkpoint_config=keep)).fit()[0]
    kept = {metrics["accuracy"] for _, metrics in result.best_checkpoints}
    assert kept == {0.9, 0.8}  # the best, and the latest (which is also the second best here)
    assert result.checkpoint.path.endswith("checkpoint_000005")
    latest_only = tune.CheckpointConfig(num_to_keep=2)
    result = tune.Tuner(scored, run_config=run_config(storage, checkpoint_config=latest_only)).fit()[0]
    assert {metrics["accuracy"] for _, metrics in result.best_checkpoints} == {0.6, 0.8}


class Counter(tune.Trainable):
    def setup(self, config, offset=0):
        self.count = offset

    def step(self):
        self.count += self.config["increment"]
        return {"count": self.count, "done": self.training_iteration + 1 >= 3, "trial": self.trial_id}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "count"), "w") as f:
            f.write(str(self.count))

    def load_checkpoint(self, checkpoint):
        with open(os.path.join(checkpoint, "count")) as f:
            self.count = int(f.read())


def test_class_trainable_with_parameters_done_flag_and_checkpoint_config(storage):
    trainable = tune.with_parameters(Counter, offset=100)
    results = tune.Tuner(trainable, param_space={"increment": tune.grid_search([1, 2])},
                         run_config=run_config(storage, stop={"done": True}, checkpoint_config=tune.CheckpointConfig(
                             checkpoint_frequency=2, checkpoint_at_end=True))).fit()
    counts = sorted(r.metrics["count"] for r in results)
    assert counts == [103, 106]
    assert all(r.metrics["trial"] == os.path.basename(r.path) for r in results)
    for result in results:
        with open(os.path.join(result.checkpoint.path, "count")) as f:
            assert int(f.read()) == result.metrics["count"]
        assert sorted(m["training_iteration"] for _, m in result.best_checkpoints) == [2, 3]


def needs_data(config: dict, data=None, scale=1) -> None:
    context = tune.get_context()
    started = time.time()
    time.sleep(0.5)
    tune.report({"value": sum(data) * scale, "cpus": context.get_trial_resources().required_resources["CPU"],
                 "started": started, "ended": time.time(), "experiment": context.get_experiment_name()})


def test_with_resources_and_with_parameters_on_a_function(storage):
    trainable = tune.with_resources(tune.with_parameters(needs_data, data=list(range(5)), scale=2), {"cpu": 2})
    results = tune.Tuner(trainable, tune_config=tune.TuneConfig(num_samples=2),
                         run_config=run_config(storage, name="with_things")).fit()
    assert [r.metrics["value"] for r in results] == [20, 20]
    assert [r.metrics["cpus"] for r in results] == [2, 2]
    assert {r.metrics["experiment"] for r in results} == {"with_things"}
    first, second = sorted((r.metrics["started"], r.metrics["ended"]) for r in results)
    assert second[0] >= first[1]  # two CPUs each, and ray.init(num_cpus=2): one after the other
    with pytest.raises(ValueError, match="CPUs and GPUs only"):
        tune.with_resources(needs_data, {"cpu": 1, "accelerator_type:A100": 1})


class TwoCpus(tune.Trainable):
    @classmethod
    def default_resource_request(cls, config):
        return tune.PlacementGroupFactory([{"CPU": 2}])

    def setup(self, config):
        self.started = time.time()

    def step(self):
        time.sleep(0.3)
        return {"cpus": tune.get_context().get_trial_resources().required_resources["CPU"],
                "started": self.started, "ended": time.time(), "done": True}


def test_a_class_default_resource_request_places_its_trials(storage):
    results = tune.Tuner(TwoCpus, tune_config=tune.TuneConfig(num_samples=2), run_config=run_config(storage)).fit()
    assert [r.metrics["cpus"] for r in results] == [2, 2]
    first, second = sorted((r.metrics["started"], r.metrics["ended"]) for r in results)
    assert second[0] >= first[1]  # two CPUs each, and ray.init(num_cpus=2): one after the other


class Recorder(tune.Callback):
    def __init__(self):
        self.calls = []

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self.calls.append(("setup", num_samples))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.calls.append(("start", trial.trial_id))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        assert isinstance(iteration, int) and trial in trials
        assert result["config"] == trial.config and result["done"] is False  # the keys Ray's results carry
        self.calls.append(("result", trial.trial_id, result["loss"]))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.calls.append(("checkpoint", os.path.basename(checkpoint.path)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        assert trial.status == "TERMINATED" and trial.status == trial.TERMINATED  # Ray's word for it
        self.calls.append(("complete", trial.trial_id))

    def on_experiment_end(self, trials, **info):
        self.calls.append(("end", len(trials)))


class Lines(tune.LoggerCallback):
    def __init__(self):
        self.lines = []

    def log_trial_result(self, iteration, trial, result):
        self.lines.append(result["loss"])

    def log_trial_end(self, trial, failed=False):
        self.lines.append(("end", failed))


def with_checkpoint(config: dict) -> None:
    for loss in (2.0, 1.0):
        with tempfile.TemporaryDirectory() as directory:
            tune.report({"loss": loss}, checkpoint=tune.Checkpoint.from_directory(directory))


class FilePerTrial(tune.LoggerCallback):
    """Ray's logging guide's shape: a file per trial in its directory, keyed by the trial object."""

    def __init__(self):
        self.files = {}

    def log_trial_start(self, trial):
        self.files[trial] = open(os.path.join(trial.local_path, "losses.txt"), "a")

    def log_trial_result(self, iteration, trial, result):
        self.files[trial].write(f"{result['loss']}\n")

    def log_trial_end(self, trial, failed=False):
        self.files.pop(trial).close()


def test_a_logger_callback_writes_into_each_trials_directory(storage):
    results = tune.Tuner(curve, param_space={"losses": tune.grid_search([[3.0, 1.0], [2.0]])},
                         run_config=run_config(storage, callbacks=[FilePerTrial()])).fit()
    for result in results:
        with open(os.path.join(result.path, "losses.txt")) as f:
            assert [float(line) for line in f] == result.config["losses"]


def test_callbacks_with_rays_hook_signatures(storage):
    recorder, lines = Recorder(), Lines()
    tune.Tuner(with_checkpoint, run_config=run_config(storage, callbacks=[recorder, lines])).fit()
    assert recorder.calls == [("setup", 1), ("start", "trial_00000"), ("result", "trial_00000", 2.0),
                              ("checkpoint", "checkpoint_000001"), ("result", "trial_00000", 1.0),
                              ("checkpoint", "checkpoint_000002"), ("complete", "trial_00000"), ("end", 1)]
    assert lines.lines == [2.0, 1.0, ("end", False)]


class StatusWatcher(tune.Callback):
    """Compares statuses with Ray's Trial constants, and checks the trials' type, as Ray callbacks do."""

    def __init__(self):
        self.seen = []

    def on_trial_start(self, iteration, trials, trial, **info):
        from asynctune.compat.ray.tune.experiment import Trial
        self.seen.append(("start", isinstance(trial, Trial), trial.status == Trial.RUNNING))

    def on_trial_complete(self, iteration, trials, trial, **info):
        from asynctune.compat.ray.tune.experiment import Trial
        self.seen.append(("complete", trial.status == Trial.TERMINATED))

    def on_trial_error(self, iteration, trials, trial, **info):
        from asynctune.compat.ray.tune.experiment import Trial
        self.seen.append(("error", trial.status == Trial.ERROR))


def raising(config: dict) -> None:
    tune.report({"loss": 1.0})
    raise ValueError("broken on purpose")


def test_callbacks_compare_statuses_with_rays_trial_constants(storage):
    watcher = StatusWatcher()
    tune.Tuner(with_checkpoint, run_config=run_config(storage, callbacks=[watcher])).fit()
    tune.Tuner(raising, run_config=run_config(storage, callbacks=[watcher])).fit()
    assert watcher.seen == [("start", True, True), ("complete", True), ("start", True, True), ("error", True)]


def endless(config: dict) -> None:
    step = 0
    while True:
        step += 1
        tune.report({"step": step, "loss": 1 / step})


class AfterThree(tune.Stopper):
    def __call__(self, trial_id, result):
        return result["step"] >= 3


@pytest.mark.parametrize("stop, last_step", [
    ({"step": 4}, 4),
    ({"training_iteration": 2}, 2),
    ({"loss": 0.4}, 1),  # Ray's rule: result[key] >= value, for every key (asynctune's would be <= for a min metric)
    (AfterThree(), 3),
    (lambda trial_id, result: result["step"] == 5, 5),
    (tune.stopper.MaximumIterationStopper(max_iter=2), 2),
    (tune.stopper.CombinedStopper(AfterThree(), tune.stopper.MaximumIterationStopper(6)), 3),
], ids=["dict", "iterations", "dict-on-metric", "Stopper", "function", "MaximumIteration", "Combined"])
def test_stop_criteria(storage, stop, last_step):
    results = tune.Tuner(endless, tune_config=tune.TuneConfig(metric="loss", mode="min"),
                         run_config=run_config(storage, stop=stop)).fit()
    assert results[0].metrics["step"] == last_step


def test_a_stop_key_no_result_has_is_named_once_as_ray_does(storage, caplog):
    results = tune.Tuner(curve, param_space={"losses": tune.grid_search([[3.0, 2.0, 1.0], [1.0, 1.0]])},
                         run_config=run_config(storage, stop={"los": 0.5, "training_iteration": 10})).fit()
    assert [r.metrics["training_iteration"] for r in results] == [3, 2]  # nothing stopped them early
    told = [r.getMessage() for r in caplog.records if "has no 'los'" in r.getMessage()]
    assert len(told) == 1 and "did you mean 'loss'?" in told[0]


def test_restore_and_can_restore(storage, tmp_path):
    tuner = tune.Tuner(curve, param_space={"losses": [1.0, 0.5]}, run_config=run_config(storage, name="again"))
    first = tuner.fit()
    path = first.experiment_path
    assert tune.Tuner.can_restore(path) and not tune.Tuner.can_restore(str(tmp_path))
    again = tune.Tuner.restore(path, trainable=curve).fit()  # a finished experiment: nothing more runs
    assert [r.metrics["loss"] for r in again] == [0.5] and again[0].metrics["training_iteration"] == 2
    with pytest.raises(ValueError, match="not an asynctune experiment directory"):
        tune.Tuner.restore(str(tmp_path), trainable=curve)
    with pytest.raises(ValueError, match="not both"):
        tune.Tuner.restore(path, trainable=curve, resume_errored=True, restart_errored=True)
    # nothing failed: resume_errored (which Ray's guide passes on every restore) changes nothing
    assert tune.Tuner.restore(path, trainable=curve, resume_errored=True).fit()[0].metrics["loss"] == 0.5


def checkpointed_steps(steps: int, fails) -> None:
    """Steps from its checkpoint's to `steps`, each reported with a checkpoint; fails(step) raises."""
    checkpoint = tune.get_checkpoint()
    start = json.load(open(os.path.join(checkpoint.path, "step.json"))) if checkpoint else 0
    for step in range(start, steps):
        fails(step)
        with tempfile.TemporaryDirectory() as directory:
            json.dump(step + 1, open(os.path.join(directory, "step.json"), "w"))
            tune.report({"step": step + 1, "start": start}, checkpoint=tune.Checkpoint.from_directory(directory))


def fails_at_two_until_fixed(config: dict) -> None:
    def fails(step: int) -> None:
        if step == 2 and not config.get("fixed") and not os.environ.get("FIXED_TRAINABLE"):
            raise RuntimeError("fails at step 2")
    checkpointed_steps(4, fails)


def fixed_trainable(config: dict) -> None:
    os.environ["FIXED_TRAINABLE"] = "1"
    fails_at_two_until_fixed(config)


def test_restart_errored_reruns_failed_trials_from_the_start_and_the_experiment_resumes_again(storage):
    first = tune.Tuner(fails_at_two_until_fixed, param_space={"fixed": tune.grid_search([True, False])},
                       run_config=run_config(storage)).fit()
    assert first.num_errors == 1
    path = first.experiment_path
    restarted = tune.Tuner.restore(path, trainable=fixed_trainable, restart_errored=True).fit()
    assert restarted.num_errors == 0
    rerun = next(r for r in restarted if not r.config["fixed"])
    assert rerun.metrics["start"] == 0 and list(rerun.metrics_dataframe["step"]) == [1, 2, 3, 4]
    again = tune.Tuner.restore(path, trainable=fixed_trainable).fit()  # its journal replays: nothing to run
    assert again.num_errors == 0 and sorted(r.metrics["step"] for r in again) == [4, 4]
    with pytest.raises(ValueError, match="errored must be one of"):
        at.resume(path, errored="retry")


def fails_at_five_then_once_after_a_restart(config: dict) -> None:
    def fails(step: int) -> None:
        restarted = os.environ.get("RESTARTED_TRAINABLE")
        if step == 5 and not restarted:
            raise RuntimeError("fails at step 5")
        if restarted and not os.path.exists(config["marker"]):  # before its first new checkpoint
            open(config["marker"], "w").close()
            raise RuntimeError("fails once after the restart")
    checkpointed_steps(6, fails)


def restarted_trainable(config: dict) -> None:
    os.environ["RESTARTED_TRAINABLE"] = "1"
    fails_at_five_then_once_after_a_restart(config)


def test_a_restarted_trial_never_restores_the_failed_attempts_checkpoints(storage, tmp_path):
    # The first attempt reached checkpoint 5 and failed for good. Restarted from scratch, it fails
    # once before its first checkpoint: its retry must start from scratch again, not restore the
    # old attempt's checkpoint 5.
    marker = str(tmp_path / "failed once")
    first = tune.Tuner(fails_at_five_then_once_after_a_restart, param_space={"marker": marker},
                       run_config=run_config(storage, failure_config=tune.FailureConfig(max_failures=1))).fit()
    assert first.num_errors == 1
    restarted = tune.Tuner.restore(first.experiment_path, trainable=restarted_trainable, restart_errored=True).fit()
    assert restarted.num_errors == 0 and os.path.exists(marker)
    result = restarted[0]
    assert result.metrics["start"] == 0 and list(result.metrics_dataframe["step"]) == [1, 2, 3, 4, 5, 6]
    assert json.load(open(os.path.join(result.checkpoint.path, "step.json"))) == 6
    trial_dir = os.path.dirname(result.checkpoint.path)
    set_aside = os.path.join(trial_dir, "restarted", "0")  # the failed attempt's, kept and never restored
    assert sorted(os.listdir(set_aside)) == [f"checkpoint_{i:06d}" for i in range(1, 6)]


class Steps(tune.Callback):
    def __init__(self):
        self.steps = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.steps.append(result["step"])


def slow_steps(config: dict) -> None:
    for step in range(3):
        time.sleep(0.25)
        tune.report({"step": step + 1})


def test_legacy_tune_run_resume_takes_the_resuming_calls_time_budget(storage):
    space = {"x": tune.grid_search([1, 2, 3, 4])}
    first = tune.run(slow_steps, config=space, name="budget", storage_path=storage, resume="AUTO",
                     time_budget_s=1.0, max_concurrent_trials=1, verbose=0)
    assert len(first.trials) < 4
    # Before: the resuming call's time_budget_s was dropped and the spent one refused the resume.
    again = tune.run(slow_steps, config=space, name="budget", storage_path=storage, resume="AUTO",
                     time_budget_s=60, max_concurrent_trials=1, verbose=0)
    assert len(again.trials) == 4 and all(t.last_result["step"] == 3 for t in again.trials[len(first.trials):])


def test_legacy_tune_run_resume_auto_starts_then_continues_and_reruns_errored_trials(storage):
    space = {"fixed": tune.grid_search([True, False])}
    first = tune.run(fails_at_two_until_fixed, config=space, name="auto", storage_path=storage, resume="AUTO",
                     raise_on_failed_trial=False, verbose=0)
    assert [t.error is not None for t in first.trials] == [False, True]
    steps = Steps()  # as in Ray, the resuming call's callbacks are the ones that run
    again = tune.run(fixed_trainable, config=space, name="auto", storage_path=storage, resume="AUTO+ERRORED",
                     verbose=0, callbacks=[steps])
    assert again.experiment_path == first.experiment_path and not any(t.error for t in again.trials)
    assert steps.steps == [3, 4]  # the rerun trial's, from its checkpoint at step 2
    rerun = next(t for t in again.trials if not t.config["fixed"])
    assert rerun.last_result["start"] == 2 and rerun.last_result["step"] == 4  # from its checkpoint
    with pytest.raises(ValueError, match="no experiment to resume"):
        tune.run(curve, config={"losses": [1.0]}, name="missing", storage_path=storage, resume="LOCAL")
    with pytest.raises(UnsupportedRayFeature, match="resume='PROMPT'"):
        tune.run(curve, config={"losses": [1.0]}, name="auto", storage_path=storage, resume="PROMPT")


def test_legacy_tune_run_returns_an_experiment_analysis(storage):
    analysis = tune.run(curve, config={"losses": tune.grid_search([[1.0], [0.5]])}, metric="loss", mode="min",
                        storage_path=storage, verbose=0)
    assert analysis.best_config == {"losses": [0.5]}


def checkpointed_losses(config: dict) -> None:
    for loss in config["losses"]:
        with tempfile.TemporaryDirectory() as directory:
            tune.report({"loss": loss}, checkpoint=tune.Checkpoint.from_directory(directory))


def test_legacy_analysis_has_rays_signatures_and_scope(storage):
    analysis = tune.run(checkpointed_losses, config={"losses": tune.grid_search([[3.0, 1.0, 2.0, 5.0], [2.5]])},
                        metric="loss", mode="min", storage_path=storage, verbose=0)
    assert isinstance(analysis, tune.ExperimentAnalysis)
    best = analysis.best_trial  # Ray's scope "last": 2.5 beats the trial that ended at 5.0
    assert best.config == {"losses": [2.5]} and analysis.get_best_trial(scope="all").config["losses"][0] == 3.0
    other = analysis.get_best_trial(scope="all")
    name = lambda checkpoint: os.path.basename(checkpoint.path)  # noqa: E731
    assert name(analysis.get_best_checkpoint(other, metric="loss", mode="min")) == "checkpoint_000002"
    assert name(analysis.get_last_checkpoint(other)) == "checkpoint_000004"
    assert name(analysis.best_checkpoint) == "checkpoint_000001"
    assert sorted(len(frame) for frame in analysis.trial_dataframes.values()) == [1, 4]
    assert sorted(analysis.dataframe(metric="loss", mode="min")["loss"]) == [1.0, 2.5]
    assert analysis.get_best_config(metric="loss", mode="max") == {"losses": [3.0, 1.0, 2.0, 5.0]}
    with pytest.raises(ValueError, match="the first argument is the trial"):
        analysis.get_best_checkpoint("loss")


def keywords_reported(config: dict) -> None:
    for step in range(3):
        tune.report(mean_loss=config["x"] - step, step=step)  # Ray 1.x's form


def test_report_takes_ray_1s_keyword_form_and_refuses_keywords_next_to_a_dict(storage):
    results = tune.Tuner(keywords_reported, param_space={"x": 5}, run_config=run_config(storage)).fit()
    assert list(results[0].metrics_dataframe["mean_loss"]) == [5, 4, 3] and results[0].metrics["step"] == 2
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['loss'\]"):
        tune.report({"accuracy": 0.5}, loss=0.1)


def dict_checkpoints(config: dict) -> None:
    start = tune.get_checkpoint().to_dict()["step"] if tune.get_checkpoint() else 0
    for step in range(start, 3):
        checkpoint = tune.Checkpoint.from_dict({"step": step + 1, "weights": b"x" * 1000})
        print(checkpoint, checkpoint == checkpoint, {checkpoint})  # writes nothing
        tune.report({"step": step + 1, "start": start}, checkpoint=checkpoint)
        if step == 2:
            checkpoint.path  # a directory, then the same checkpoint reported again
            tune.report({"step": step + 1, "start": start, "again": True}, checkpoint=checkpoint)
        if step == 1 and not config["resumed"].exists():
            config["resumed"].touch()
            raise RuntimeError("fails once after step 2")


def test_a_dict_checkpoint_is_written_once_into_the_trial_and_read_back(storage, tmp_path, monkeypatch):
    results = tune.Tuner(dict_checkpoints, param_space={"resumed": tmp_path / "failed_once"},
                         run_config=run_config(storage, failure_config=tune.FailureConfig(max_failures=1))).fit()
    result = results[0]
    assert result.error is None and result.metrics["start"] == 2  # the retry read the dict back
    assert result.checkpoint.to_dict() == {"step": 3, "weights": b"x" * 1000} and result.metrics["again"]

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.mkdir(tempfile.tempdir)
    checkpoint = tune.Checkpoint.from_dict({"step": 1})
    assert os.listdir(tempfile.tempdir) == [] and checkpoint.to_dict() == {"step": 1}  # report() writes it once
    assert tune.Checkpoint(checkpoint.path).to_dict() == {"step": 1}  # a directory when one is asked for
    assert os.listdir(tempfile.tempdir) == [os.path.basename(checkpoint.path)]


def test_a_function_trainable_returning_something_else_than_metrics_fails_naming_what_it_may_return(storage):
    results = tune.Tuner(lambda config: "done", run_config=run_config(storage)).fit()
    assert results.num_errors == 1 and "may return None, a dict of metrics or a number" in str(results.errors[0])


def slow_curve(config: dict) -> None:
    for loss in config["losses"]:
        time.sleep(0.3)
        tune.report({"loss": loss})


class FinalOnly(tune.CLIReporter):
    """Ray's documented way to report only at the end: override should_report."""

    def __init__(self):
        super().__init__(metric_columns=["loss"])
        self.reports = []

    def should_report(self, trials, done=False):
        return done

    def report(self, trials, done, *sys_info):
        self.reports.append((done, len(trials)))


def test_progress_reporters_can_be_subclassed_and_print_only_the_final_table(storage, capsys):
    reporter = FinalOnly()
    tune.Tuner(curve, param_space={"losses": tune.grid_search([[1.0], [2.0]])},
               run_config=tune.RunConfig(storage_path=storage, progress_reporter=reporter)).fit()
    assert reporter.reports == [(True, 2)]
    capsys.readouterr()
    tune.Tuner(slow_curve, param_space={"losses": [1.0, 2.0, 3.0]},
               run_config=tune.RunConfig(storage_path=storage, progress_reporter=tune.CLIReporter(
                   max_report_frequency=0, print_intermediate_tables=False))).fit()
    assert capsys.readouterr().out.count("== Status ==") == 1
    with pytest.raises(ValueError, match="progress_reporter must be a tune.CLIReporter"):
        tune.RunConfig(progress_reporter=print)


def test_plateau_stoppers_follow_rays_rules_and_check_their_arguments():
    from asynctune.compat.ray.tune.stopper import ExperimentPlateauStopper, TrialPlateauStopper
    stopper = TrialPlateauStopper("loss", std=0.01, num_results=3, grace_period=4)
    assert [stopper("t", {"loss": v}) for v in (5.0, 1.0, 1.0, 1.0, 1.0)] == [False, False, False, True, True]
    assert stopper("u", {"loss": 1.0}) is False  # each trial counts its own results
    threshold = TrialPlateauStopper("loss", num_results=2, grace_period=2, metric_threshold=0.5, mode="min")
    assert [threshold("t", {"loss": v}) for v in (1.0, 1.0, 0.4, 0.4)] == [False, False, False, True]
    experiment = ExperimentPlateauStopper("acc", std=0.0, top=2, mode="max", patience=1)
    for value in (0.9, 0.9):
        experiment("t", {"acc": value})
    assert not experiment.stop_all()  # plateaued, but patience wants one more result
    experiment("t", {"acc": 0.1})
    assert experiment.stop_all()
    for bad, match in [(lambda: TrialPlateauStopper("loss", std=-1), "std must be"),
                       (lambda: TrialPlateauStopper("loss", num_results=0), "num_results must be"),
                       (lambda: TrialPlateauStopper("loss", metric_threshold=1.0), "needs mode"),
                       (lambda: ExperimentPlateauStopper("acc", top=1), "top must be"),
                       (lambda: ExperimentPlateauStopper("acc", mode="up"), "mode must be"),
                       (lambda: tune.CLIReporter(max_progress_rows=0), "max_progress_rows must be"),
                       (lambda: tune.CLIReporter(metric_columns="loss"), "metric_columns must be")]:
        with pytest.raises(ValueError, match=match):
            bad()


@pytest.mark.parametrize("module, name, same_as", [
    ("air.config", "RunConfig", lambda: tune.RunConfig), ("air.checkpoint", "Checkpoint", lambda: tune.Checkpoint),
    ("air.session", "report", lambda: tune.report), ("tune.tuner", "Tuner", lambda: tune.Tuner),
    ("tune.tune_config", "TuneConfig", lambda: tune.TuneConfig),
    ("tune.result_grid", "ResultGrid", lambda: tune.ResultGrid),
    ("tune.search.repeater", "Repeater", lambda: tune.search.Repeater),
    ("tune.search.concurrency_limiter", "ConcurrencyLimiter", lambda: tune.search.ConcurrencyLimiter),
    ("tune.progress_reporter", "CLIReporter", lambda: tune.CLIReporter),
    ("tune.analysis", "ExperimentAnalysis", lambda: tune.ExperimentAnalysis),
])
def test_rays_other_import_paths_give_the_same_objects(module, name, same_as):
    assert getattr(importlib.import_module(f"asynctune.compat.ray.{module}"), name) is same_as()


def test_sync_config_takes_any_of_rays_arguments_and_refuses_remote_uploads():
    assert tune.SyncConfig(syncer=None, sync_on_checkpoint=False).extra == {"syncer": None,
                                                                            "sync_on_checkpoint": False}
    with pytest.raises(UnsupportedRayFeature, match="upload_dir='s3://bucket/x'"):
        train.SyncConfig(upload_dir="s3://bucket/x")


def test_train_aliases_are_the_tune_objects():
    assert train.report is tune.report and train.get_checkpoint is tune.get_checkpoint
    assert train.Checkpoint is tune.Checkpoint and train.RunConfig is tune.RunConfig
    assert train.get_context is tune.get_context and train.CheckpointConfig is tune.CheckpointConfig


def test_search_space_functions_keep_rays_bounds():
    from asynctune.core.space import Space
    import numpy as np
    space = Space({"a": tune.randint(0, 2), "b": tune.qrandint(0, 4, 2), "c": tune.qlograndint(1, 8, 1),
                   "d": tune.sample_from(lambda spec: spec.config.a * 10)})
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(200)]
    assert {c["a"] for c in configs} == {0, 1}  # upper exclusive, as in Ray
    assert {c["b"] for c in configs} == {0, 2, 4}  # upper inclusive for qrandint, as in Ray
    assert {c["c"] for c in configs} <= set(range(1, 9)) and 8 in {c["c"] for c in configs}
    assert all(c["d"] == c["a"] * 10 for c in configs)


def test_sample_from_reads_the_config_every_way_rays_spec_allows():
    from asynctune.core.space import Space
    import numpy as np
    space = Space({"opt": {"lr": tune.uniform(0.1, 0.2)},
                   "a": tune.sample_from(lambda spec: spec["config"]["opt"]["lr"] * 2),  # Ray's resolved spec dict
                   "b": tune.sample_from(lambda spec: spec.config.opt.lr * 3),
                   "c": tune.sample_from(lambda spec: spec["opt"]["lr"] + spec.config.get("missing", 1))})
    config = space.sample(np.random.default_rng(0))
    lr = config["opt"]["lr"]
    assert (config["a"], config["b"], config["c"]) == (lr * 2, lr * 3, lr + 1)


def test_bad_configs_are_named_before_anything_runs():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        tune.TuneConfig(mode="minimize")
    with pytest.raises(ValueError, match="num_to_keep"):
        tune.CheckpointConfig(num_to_keep=0)
    with pytest.raises(ValueError, match="fail_fast"):
        tune.FailureConfig(fail_fast="sometimes")
    with pytest.raises(UnsupportedRayFeature, match="give a local directory"):
        tune.RunConfig(storage_path="s3://bucket/results")
    with pytest.raises(ValueError, match="registered name"):
        tune.Tuner("PPO")
    with pytest.raises(ValueError, match="tune_config must be a tune.TuneConfig"):
        tune.Tuner(curve, tune_config={"metric": "loss"})
    with pytest.raises(ValueError, match="num_cpus"):
        ray.init(num_cpus=-1)


def test_tune_run_names_an_argument_ray_does_not_have_before_anything_runs(storage):
    with pytest.raises(TypeError, match="'confg'.*did you mean 'config'"):
        tune.run(curve, confg={"losses": [1.0]}, storage_path=storage, name="typo")
    assert not os.path.exists(os.path.join(storage, "typo"))
    with pytest.raises(UnsupportedRayFeature, match="storage_filesystem"):
        tune.run(curve, config={"losses": [1.0]}, storage_path=storage, storage_filesystem=object())
    # Ray's arguments that asynctune has no use for are still accepted
    analysis = tune.run(curve, config={"losses": [1.0]}, storage_path=storage, verbose=0, reuse_actors=True,
                        log_to_file=True, trial_name_creator=str, export_formats=["model"],
                        sync_config=tune.SyncConfig(syncer=None))
    assert analysis.trials[0].last_result["loss"] == 1.0


def no_config():
    pass


def test_a_function_trainable_that_takes_no_config_is_refused_before_any_trial(storage):
    with pytest.raises(ValueError, match="no_config.*must take the config as its one positional argument"):
        tune.Tuner(no_config, run_config=run_config(storage, name="noconf"))
    assert not os.path.exists(os.path.join(storage, "noconf"))

    def with_data(config, data):
        tune.report({"n": len(data) + config["k"]})

    def with_extra_default(config, checkpoint_dir=None):  # Ray 1.x's signature is still accepted
        tune.report({"n": config["k"]})

    grid = tune.Tuner(tune.with_parameters(with_data, data=[1, 2]), param_space={"k": 1},
                      run_config=run_config(storage)).fit()
    assert grid[0].metrics["n"] == 3
    extra = tune.Tuner(with_extra_default, param_space={"k": 5}, run_config=run_config(storage)).fit()[0]
    assert extra.metrics["n"] == 5


@pytest.mark.parametrize("importer, hint", [
    (lambda: ray.remote, "no tasks, actors or object store"),
    (lambda: tune.register_trainable, "pass the function or class itself"),
    (lambda: tune.schedulers.PB2, "PopulationBasedTraining"),
    (lambda: __import__("asynctune.compat.ray.tune.schedulers.pb2", fromlist=["PB2"]).PB2, "PopulationBasedTraining"),
    (lambda: __import__("asynctune.compat.ray.tune.search.bayesopt", fromlist=["x"]).BayesOptSearch, "OptunaSearch"),
    (lambda: tune.schedulers.ResourceChangingScheduler, "fixed per trial"),
    (lambda: train.ScalingConfig, "one process per trial"),
    (lambda: tune.logger.CSVLogger, "progress.csv"),
    (lambda: importlib.import_module("asynctune.compat.ray.rllib.algorithms.ppo"), "RLlib is not mirrored"),
    (lambda: importlib.import_module("asynctune.compat.ray.tune.examples.pbt_function"), "copy the function"),
    (lambda: importlib.import_module("asynctune.compat.ray.train.lightning"), "pytorch_lightning.TuneReportCheck"),
    (lambda: importlib.import_module("asynctune.compat.ray.train.huggingface.transformers"),
     "integrations.transformers.TuneReportCallback"),
    (lambda: importlib.import_module("asynctune.compat.ray.train.torch"), "TorchTrainer"),
    (lambda: importlib.import_module("asynctune.compat.ray.tune.integration.keras").TuneCallback,
     "call tune.report"),
], ids=["ray.remote", "register_trainable", "PB2", "from-pb2-import", "BayesOptSearch", "ResourceChangingScheduler",
        "ScalingConfig", "CSVLogger", "rllib-module", "examples-module", "train-lightning", "train-huggingface",
        "train-torch", "keras-callback"])
def test_unsupported_ray_names_say_what_to_do_instead(importer, hint):
    with pytest.raises(UnsupportedRayFeature, match=hint) as raised:
        importer()
    assert "docs/migrating_from_ray.md" in str(raised.value) and not isinstance(raised.value, AttributeError)


def test_the_trial_side_modules_import_none_of_the_drivers_reporting():
    # A trainable's `from ray import train` / `from ray.air import session` runs in every worker:
    # the driver's reporting pulls in tensorboardX (and with it torch, a second per process).
    import subprocess
    code = ("import sys\nfrom asynctune.compat.ray import train\nfrom asynctune.compat.ray.air import session\n"
            "print(sorted(m for m in ('asynctune.reporting', 'tensorboardX', 'torch', 'pandas') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported == "[]\n"
    assert train.RunConfig is tune.RunConfig and ray.air.FailureConfig is tune.FailureConfig  # still there when asked
    with pytest.raises(UnsupportedRayFeature, match="one process per trial"):
        ray.air.ScalingConfig  # noqa: B018


def test_unknown_names_are_attribute_errors_that_say_where_the_mirror_ends():
    with pytest.raises(AttributeError, match="mirrors only part of ray.tune.*asynctune.run"):
        tune.no_such_thing  # noqa: B018
    assert not hasattr(tune, "__wrapped__")  # introspection still gets a plain AttributeError


def test_plain_asynctune_names_rays_api_and_the_compat_layer():
    for name in ("Tuner", "TuneConfig", "RunConfig", "Checkpoint", "with_resources"):
        with pytest.raises(AttributeError, match=f"no attribute '{name}' \\(a Ray Tune name\\).*asynctune.compat.ray"):
            getattr(at, name)
    with pytest.raises(AttributeError, match="^module 'asynctune' has no attribute 'nothing_like_ray'$"):
        at.nothing_like_ray  # noqa: B018
    with pytest.raises(TypeError, match="param_space: pass config=.*tune_config: pass its fields.*asynctune.compat.ray"):
        at.run(curve, param_space={}, tune_config=None)
    with pytest.raises(TypeError, match="reuse_actors"):
        at.run(curve, reuse_actors=True)


def test_a_trainable_that_still_calls_rays_report_is_named_before_any_trial(tmp_path, storage, caplog, monkeypatch):
    """A half-migrated script: Ray's report outside a Ray session does nothing. A stand-in `ray`
    package with such a report plays Ray here (Ray itself is not a test dependency)."""
    package = tmp_path / "fake" / "ray" / "tune"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("def report(metrics, checkpoint=None):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")]))  # workers
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    import ray.tune as ray_tune  # the stand-in

    def half_migrated(config):
        ray_tune.report({"loss": 1.0})

    with caplog.at_level("WARNING", logger="asynctune"), pytest.raises(at.NothingReported, match="ray.tune.report"):
        at.run(half_migrated, storage_path=storage, verbose=0)
    assert "half_migrated refers to Ray's own ray.tune" in caplog.text and "asynctune.compat.ray" in caplog.text


DRIVER = """
import json, os, sys, tempfile, time
from asynctune.compat.ray import tune

def count(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            start = json.load(open(os.path.join(directory, "state.json")))["step"]
    for step in range(start, 12):
        time.sleep(0.1)
        with tempfile.TemporaryDirectory() as directory:
            json.dump({"step": step + 1}, open(os.path.join(directory, "state.json"), "w"))
            tune.report({"step": step + 1, "resumed_from": start}, checkpoint=tune.Checkpoint.from_directory(directory))

tune.Tuner(count, tune_config=tune.TuneConfig(num_samples=2),
           run_config=tune.RunConfig(storage_path=sys.argv[1], name="killed", verbose=0)).fit()
"""


def test_tuner_restore_continues_an_experiment_whose_driver_was_killed(tmp_path, storage):
    from tests.helpers.driver_runs import start_script, wait_for_results
    driver = start_script(tmp_path / "driver.py", DRIVER, storage)
    try:
        wait_for_results(os.path.join(storage, "killed"), 6, timeout=60)
    finally:
        driver.kill()  # SIGKILL: no chance to save anything on the way out
        driver.wait()
    path = os.path.join(storage, "killed")
    assert tune.Tuner.can_restore(path)
    results = tune.Tuner.restore(path, trainable=None).fit()
    assert [r.metrics["step"] for r in results] == [12, 12]
    assert any(r.metrics["resumed_from"] > 0 for r in results)  # went on from a checkpoint, not from scratch
    assert all(list(r.metrics_dataframe["step"]) == list(range(1, 13)) for r in results)  # nothing lost or twice


class _Counter(tune.Trainable):
    def setup(self, config: dict) -> None:
        self.count = 0

    def step(self) -> dict:
        self.count += self.config["increment"]
        return {"count": self.count}

    def save_checkpoint(self, checkpoint_dir: str) -> dict:
        return {"count": self.count}

    def load_checkpoint(self, checkpoint: dict) -> None:
        self.count = checkpoint["count"]


def test_a_trainable_saved_outside_a_run_restores_its_iteration(tmp_path):
    model = _Counter(config={"increment": 2})
    for _ in range(3):
        model.train()
    checkpoint = model.save(str(tmp_path / "saved"))
    later = _Counter(config={"increment": 2})
    later.restore(checkpoint)
    assert later.training_iteration == 3  # as in Ray: it goes on counting from there
    assert later.train() == {"count": 8, "training_iteration": 4, "done": False}
    later.stop()


class _Named(tune.Trainable):
    def setup(self, config: dict) -> None:
        self.log_file = os.path.join(self.logdir, f"{self.trial_name}.log")  # Ray users name files so

    def step(self) -> dict:
        with open(self.log_file, "a") as f:
            f.write("step\n")
        return {"trial": self.trial_id}


def test_a_trainables_trial_names_and_logdir_outside_a_run_are_rays(tmp_path, storage):
    model = _Named(config={})  # Ray: trial id and name "default", a directory of its own
    assert (model.trial_id, model.trial_name) == ("default", "default") and os.path.isdir(model.logdir)
    assert model.train()["trial"] == "default" and os.path.isfile(model.log_file)
    result = tune.Tuner(_Named, run_config=run_config(storage, stop={"training_iteration": 2})).fit()[0]
    assert result.metrics["trial"] == result.metrics["trial_id"]  # in a run, the trial's own
    assert os.path.isfile(os.path.join(result.path, f"{result.metrics['trial_id']}.log"))


def saves_relative_paths(config: dict) -> None:
    """Ray's tutorials save with relative paths: Ray runs each trial in its own directory."""
    for step in range(2):
        os.makedirs("my_model", exist_ok=True)
        with open("my_model/weights.txt", "w") as f:
            f.write(f"{config['x']} {step}")
        with open("./model.pth", "w") as f:
            f.write(str(config["x"]))
        time.sleep(0.2)  # both trials run at once: a shared directory would mix their files
        train.report({"cwd": os.getcwd()}, checkpoint=train.Checkpoint.from_directory("my_model"))


class _RelativeWriter(tune.Trainable):
    def setup(self, config: dict) -> None:
        self.started_in = os.getcwd()

    def step(self) -> dict:
        with open("notes.txt", "a") as f:
            f.write("step\n")
        return {"cwd": self.started_in, "done": True}


def test_each_trial_runs_in_its_own_directory_as_in_ray(storage, tmp_path, monkeypatch):
    tmp_path = tmp_path / "launched_from"
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    grid = tune.Tuner(saves_relative_paths, param_space={"x": tune.grid_search([1, 2])},
                      run_config=run_config(storage)).fit()
    for result in grid:
        assert os.path.samefile(result.metrics["cwd"], result.path)
        with open(os.path.join(result.path, "model.pth")) as f:
            assert f.read() == str(result.config["x"])
        with result.checkpoint.as_directory() as directory, open(os.path.join(directory, "weights.txt")) as f:
            assert f.read() == f"{result.config['x']} 1"  # its own weights, from its last step
    assert os.listdir(tmp_path) == [] and os.getcwd() == str(tmp_path)  # the driver's directory is untouched
    result = tune.Tuner(_RelativeWriter, run_config=run_config(storage)).fit()[0]
    assert os.path.samefile(result.metrics["cwd"], result.path)
    assert os.path.isfile(os.path.join(result.path, "notes.txt"))
    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")  # Ray's switch to keep the working directory
    kept = tune.Tuner(saves_relative_paths, param_space={"x": 3}, run_config=run_config(storage)).fit()[0]
    assert kept.metrics["cwd"] == str(tmp_path) and os.path.isfile(tmp_path / "model.pth")


def checkpoints_its_working_directory(config: dict) -> None:
    tune.report({"x": 1}, checkpoint=tune.Checkpoint.from_directory("."))


def test_a_checkpoint_of_the_trials_own_directory_is_refused_naming_the_way(storage):
    grid = tune.Tuner(checkpoints_its_working_directory, run_config=run_config(storage)).fit()
    error = str(grid.errors[0])
    assert "holds the trial's own directory" in error and "from_directory('my_model')" in error
    assert not [name for name in os.listdir(grid[0].path) if name.startswith("checkpoint")]  # nothing copied


def uses_rays_older_and_newer_names(config: dict) -> None:
    checkpoint = tune.get_checkpoint()
    resumed_from = checkpoint.get_metadata()["step"] if checkpoint else 0
    for step in range(resumed_from + 1, 4):
        with tempfile.TemporaryDirectory() as directory:
            saved = tune.Checkpoint.from_directory(directory)
            saved.set_metadata({"step": step})  # Ray 2.7+'s checkpoint metadata
            saved.update_metadata({"trial": tune.get_trial_id()})  # Ray 1.x's session function
            tune.report({"step": step, "dir_is_mine": tune.get_trial_dir() == tune.get_context().get_trial_dir(),
                         "in_session": tune.is_session_enabled(), "resumed_from": resumed_from}, checkpoint=saved)
            if step == 2 and not resumed_from:
                raise RuntimeError("once")


class _Countdown(tune.search.Searcher):
    def __init__(self):
        super().__init__(metric="step", mode="max")
        self.left = 2

    def suggest(self, trial_id):
        self.left -= 1
        return {} if self.left >= 0 else tune.search.Searcher.FINISHED  # Ray's way to end the search


def test_rays_older_and_newer_small_names(storage):
    grid = tune.Tuner(uses_rays_older_and_newer_names,
                      tune_config=tune.TuneConfig(search_alg=_Countdown(), num_samples=-1),
                      run_config=run_config(storage, failure_config=tune.FailureConfig(max_failures=1))).fit()
    assert len(grid) == 2 and grid.num_errors == 0
    result = grid[0]
    assert result.metrics["resumed_from"] == 2 and result.metrics["dir_is_mine"] and result.metrics["in_session"]
    assert result.checkpoint.get_metadata() == {"step": 3, "trial": result.metrics["trial_id"]}
    assert result.log_dir == result.path and not tune.is_session_enabled()
    with pytest.raises(ValueError, match="JSON-serializable"):
        result.checkpoint.set_metadata({"f": object()})
    analysis = tune.ExperimentAnalysis(grid.experiment_path, default_metric="step", default_mode="max")
    trial = analysis.trials[0]
    assert analysis.get_best_logdir() == analysis.best_trial.path
    assert [value for _, value in analysis.get_trial_checkpoints_paths(trial, "step")] == [1, 2, 3]
    assert set(analysis.fetch_trial_dataframes()) == {t.trial_id for t in analysis.trials}
    assert importlib.import_module("asynctune.compat.ray.tune.trainable").Trainable is tune.Trainable
    with pytest.raises(UnsupportedRayFeature, match="TemporaryDirectory"):
        tune.checkpoint_dir  # noqa: B018


def asks_for_gpus(config: dict) -> None:
    tune.report({"gpus": ray.get_gpu_ids(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES")})


def test_ray_get_gpu_ids_lists_the_trials_gpus(storage):
    result = tune.Tuner(asks_for_gpus, run_config=run_config(storage)).fit()[0]
    visible = result.metrics["visible"]
    assert result.metrics["gpus"] == ([int(i) for i in visible.split(",")] if visible else [])
    assert ray.get_gpu_ids() == []  # the driver holds none, as in Ray


class _CannotLoad(_Counter):
    def load_checkpoint(self, checkpoint: dict) -> None:
        raise KeyError("weights")  # a checkpoint missing what load_checkpoint needs


def test_validate_save_restore_checks_a_trainables_checkpoints_as_ray_does():
    from asynctune.compat.ray.tune.utils import validate_save_restore
    assert validate_save_restore(_Counter, config={"increment": 1}) is True
    with pytest.raises(KeyError, match="weights"):
        validate_save_restore(_CannotLoad, config={"increment": 1})


def prints(config: dict) -> None:
    print(f"epoch 1 of trial x={config['x']}")
    print(f"a warning for x={config['x']}", file=sys.stderr)
    tune.report({"done_printing": True})


def test_what_trials_print_reaches_the_drivers_console_as_in_ray(storage, capfd):
    tune.Tuner(prints, param_space={"x": tune.grid_search([1, 2])}, run_config=run_config(storage)).fit()
    out, err = capfd.readouterr()
    assert "(trial_00000) epoch 1 of trial x=1" in out and "(trial_00001) epoch 1 of trial x=2" in out
    assert "(trial_00000) a warning for x=1" in err
    ray.init(num_cpus=2, log_to_driver=False)  # Ray's switch to keep them in the trials' files only
    tune.Tuner(prints, param_space={"x": 3}, run_config=run_config(storage)).fit()
    out, err = capfd.readouterr()
    assert "x=3" not in out + err
