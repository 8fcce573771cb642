"""The simulated executor: virtual time, reproducibility, decisions, table lookups."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

import asynctune as at
from asynctune import Scheduler
from asynctune.executors.simulated.executor import SimulatedExecutor, Workload, replay
from tests.helpers.paths import REPO_ROOT
from tests.helpers.simulated import results, simulate, table


# Virtual time --------------------------------------------------------------------------------------

def test_a_trial_of_ten_epochs_of_three_seconds_ends_at_thirty(storage):
    analysis = simulate(table(1), storage)
    rows = results(analysis)
    assert [r["training_iteration"] for r in rows] == list(range(1, 11))
    assert [r["timestamp"] for r in rows] == pytest.approx([3.0 * k for k in range(1, 11)])
    assert rows[-1]["time_total_s"] == pytest.approx(30.0)
    assert all(r["time_this_iter_s"] == 3.0 for r in rows)
    assert analysis.trials[0].end_time == pytest.approx(30.0)


@pytest.mark.parametrize("workers, end", [(1, 120.0), (2, 60.0), (4, 30.0)], ids=["1-worker", "2-workers", "4-workers"])
def test_four_trials_share_the_virtual_workers(storage, workers, end):
    analysis = simulate(table(4), storage, workers=workers)
    rows = results(analysis)
    assert len(rows) == 40
    assert max(r["timestamp"] for r in rows) == pytest.approx(end)
    assert max(t.end_time for t in analysis.trials) == pytest.approx(end)
    starts = sorted(t.start_time for t in analysis.trials)
    assert starts == pytest.approx([30.0 * (i // workers) for i in range(4)])  # a worker frees, the next starts


def test_results_carry_the_framework_fields_and_the_curve(storage):
    analysis = simulate(table(3), storage, workers=3)
    for trial in analysis.trials:
        rows = analysis.trial_results(trial.trial_id)
        x = trial.config["x"]
        assert [r["loss"] for r in rows] == pytest.approx([x + 10.0 / k for k in range(1, 11)])
        assert {r["trial_id"] for r in rows} == {trial.trial_id}
        assert all(r["table_index"] == x and r["x_seen"] == x for r in rows)
    assert analysis.best_config == {"x": 0}


def test_the_time_budget_counts_virtual_seconds(storage):
    analysis = simulate(table(4), storage, workers=1, time_budget_s=45)
    rows = results(analysis)
    assert rows[-1]["timestamp"] == pytest.approx(45.0)  # the result at the deadline ends it
    assert len(rows) == 15
    assert analysis.status == "STOPPED"


# Decisions -----------------------------------------------------------------------------------------

class StopAt(Scheduler):
    def __init__(self, iteration: int) -> None:
        super().__init__()
        self.iteration = iteration

    def on_trial_result(self, trial, result):
        return at.STOP if result["training_iteration"] >= self.iteration else at.CONTINUE


def test_a_stopped_trial_frees_its_worker_at_once(storage):
    analysis = simulate(table(4), storage, workers=1, scheduler=StopAt(2))
    rows = results(analysis)
    assert [r["training_iteration"] for r in rows] == [1, 2] * 4
    assert [r["timestamp"] for r in rows] == pytest.approx([3.0 * k for k in range(1, 9)])
    assert all(t.status is at.Status.EARLY_STOPPED for t in analysis.trials)


class PauseAtThree(Scheduler):
    """Pause each trial at iteration 3; the last to get there resumes the others and goes on."""

    def __init__(self, population: int) -> None:
        super().__init__()
        self.population = population
        self.paused: list = []

    def on_trial_result(self, trial, result):
        if result["training_iteration"] != 3 or trial in self.paused:
            return at.CONTINUE
        if len(self.paused) + 1 < self.population:
            self.paused.append(trial)
            return at.PAUSE
        for other in self.paused:
            self.control.resume_trial(other)
        return at.CONTINUE


def test_paused_trials_resume_where_they_stopped(storage):
    analysis = simulate(table(2), storage, workers=1, scheduler=PauseAtThree(2))
    for trial in analysis.trials:
        rows = analysis.trial_results(trial.trial_id)
        assert [r["training_iteration"] for r in rows] == list(range(1, 11))
        assert rows[-1]["time_total_s"] == pytest.approx(30.0)  # training time, not waiting time
    assert os.path.exists(os.path.join(analysis.trials[0].path, "checkpoint_000003", ".asynctune.json"))
    rows = results(analysis)
    # One worker: trial 0 runs 3 epochs and pauses, trial 1 runs to the end, then trial 0 resumes at 4.
    order = [(r["trial_id"][-1], r["training_iteration"]) for r in rows]
    assert order == [("0", k) for k in (1, 2, 3)] + [("1", k) for k in range(1, 11)] + [("0", k) for k in range(4, 11)]
    assert [r["timestamp"] for r in rows] == pytest.approx([3.0 * k for k in range(1, 21)])


class MutateAt(Scheduler):
    """At iteration 5, trial 1 continues on x=3's curve from trial 0's checkpoint at 4."""

    def on_trial_result(self, trial, result):
        if trial.config["x"] == 1 and result["training_iteration"] == 5:
            donor = self.control.trials[0]
            return at.Mutate({"x": 3}, donor.checkpoint)
        return at.CONTINUE


def test_a_mutated_trial_continues_on_the_new_curve_from_the_checkpoint(storage):
    analysis = simulate(table(4), storage, workers=2, scheduler=MutateAt(), checkpoint_frequency=4,
                        config={"x": at.grid_search([0, 1])})
    rows = analysis.trial_results("trial_00001")
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10]
    assert [r["table_index"] for r in rows] == [1] * 5 + [3] * 6
    assert rows[5]["loss"] == pytest.approx(3 + 10.0 / 5)
    assert analysis.trials[1].config == {"x": 3}


def test_runs_with_the_same_seed_give_the_same_results(storage):
    def once(name):
        analysis = simulate(table(12, epochs=9), storage, workers=3, name=name, config={"x": at.randint(0, 12)},
                            num_samples=10, scheduler=PauseAtThree(10), seed=7)
        return [(r["trial_id"], r["training_iteration"], r["timestamp"], r["loss"]) for r in results(analysis)]

    first, second = once("a"), once("b")
    assert first == second
    assert len({row[0] for row in first}) == 10


# The table -----------------------------------------------------------------------------------------

def test_configs_off_the_table_get_the_nearest_recorded_curve():
    workload = Workload(
        "mixed", [{"lr": 1e-3, "act": "relu"}, {"lr": 1e-1, "act": "relu"}, {"lr": 1e-2, "act": "tanh"}],
        {"loss": [[1.0], [2.0], [3.0]]}, [[1.0], [1.0], [1.0]], metric="loss", mode="min",
        space={"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
               "act": {"type": "choice", "values": ["relu", "tanh"]}})
    assert workload.nearest({"lr": 1e-1, "act": "relu"}) == 1
    assert workload.nearest({"lr": 2e-3, "act": "relu"}) == 0  # log scale: 2e-3 is nearer 1e-3 than 1e-1
    assert workload.nearest({"lr": 1e-3, "act": "tanh"}) == 2  # categoricals match first
    assert workload.nearest({"lr": 0.5, "act": "sigmoid"}) == 1  # no match: the nearest of all
    space = workload.space()
    assert space["lr"].log and space["act"].categories == ["relu", "tanh"]


def test_a_workload_survives_a_round_trip_through_its_file(tmp_path):
    workload = table(3, epochs=4)
    path = str(tmp_path / "toy.json.gz")
    workload.save(path)
    again = Workload.load(path)
    assert again.configs == workload.configs and again.metric == "loss" and again.max_epochs == 4
    np.testing.assert_allclose(again.curves["loss"], workload.curves["loss"], rtol=1e-4)
    np.testing.assert_allclose(again.epoch_time_s, workload.epoch_time_s)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_workers": 0}, "n_workers must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"noise": -0.1}, "noise must be a number >= 0"),
    ({"overhead_s": -1}, "overhead_s must be a number >= 0"),
], ids=["workers", "seed", "noise", "overhead"])
def test_executor_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatedExecutor(table(), **kwargs)


@pytest.mark.parametrize("change, message", [
    ({"metric": "acc"}, "metric='acc' is not one of the recorded curves"),
    ({"mode": "best"}, "mode must be 'min' or 'max'"),
    ({"epoch_time_s": [[1.0]]}, "epoch_time_s must have shape"),
    ({"configs": []}, "configs is empty"),
], ids=["metric", "mode", "times", "configs"])
def test_workload_arguments_are_checked(change, message):
    args = {"configs": [{"x": 0}, {"x": 1}], "curves": {"loss": [[1.0, 0.5], [2.0, 1.0]]},
            "epoch_time_s": [[1.0, 1.0], [1.0, 1.0]], "metric": "loss", "mode": "min"}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        Workload("bad", args.pop("configs"), args.pop("curves"), args.pop("epoch_time_s"), **args)


def test_noise_is_seeded(storage):
    def losses(seed, name):
        executor = SimulatedExecutor(table(2), n_workers=2, seed=seed, noise=0.5)
        analysis = at.run(replay, config={"x": at.grid_search([0, 1])}, metric="loss", mode="min",
                          executor=executor, storage_path=storage, name=name, verbose=0)
        return [r["loss"] for r in results(analysis)]

    first = losses(1, "a")
    assert first == losses(1, "b")
    assert first != losses(2, "c")


# The schedulers on a recorded workload -------------------------------------------------------------

ROOT = REPO_ROOT
DIGITS = os.path.join(ROOT, "benchmarks", "workloads", "mlp_digits.json.gz")


def _compare_module(*needs: str):
    import importlib.util

    for module in ("schedulers.asha", *needs):
        pytest.importorskip(f"asynctune.algorithms.{module}")
    spec = importlib.util.spec_from_file_location("compare_schedulers", os.path.join(ROOT, "benchmarks", "compare_schedulers.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("compare_schedulers", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["median", "hyperband", "asha-stop", "asha-promote", "pbt", "tpe-asha"])
def test_every_scheduler_replays_a_workload_reproducibly(method):
    compare = _compare_module(*(["search.tpe"] if method.startswith("tpe") else []))
    first, second = (compare.run_one(method, 3, DIGITS, 4, 0.8, False) for _ in range(2))
    assert not first.error, first.error
    assert first.trials >= 4 and len(first.times) > 30
    assert (first.times, first.values, first.trials) == (second.times, second.values, second.trials)


def test_a_small_comparison_runs_end_to_end(capsys, tmp_path):
    compare = _compare_module("search.tpe", "search.skopt_search")
    plot = str(tmp_path / "compare.png")
    traces = compare.main(["--workload", DIGITS, "--seeds", "2", "--budget", "0.6", "--processes", "1",
                           "--pbt-population", "4", "--plot", plot])
    out = capsys.readouterr().out
    assert set(traces) == set(compare.METHODS)
    for method, runs in traces.items():
        assert len(runs) == 2 and not any(r.error for r in runs), (method, [r.error for r in runs])
        assert all(r.times and max(r.times) <= 0.6 for r in runs)
    assert "| random + ASHA (stopping) |" in out and "PBT against random search at equal compute" in out
    assert os.path.getsize(plot) > 10_000


# Recording: batched (the simulation's default) or files --------------------------------------------

def _asha_on_digits(storage: str, name: str, recording: str, **kwargs):
    from asynctune.algorithms.schedulers.asha import ASHAScheduler

    workload = Workload.load(DIGITS)
    return at.run(replay, config=workload.space(), num_samples=kwargs.pop("num_samples", 60), metric="val_error",
                  mode="min", scheduler=ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3,
                                                      variant=kwargs.pop("variant", "promotion"), seed=3),
                  executor=SimulatedExecutor(workload, n_workers=kwargs.pop("workers", 8), seed=3, recording=recording),
                  storage_path=storage, name=name, seed=3, verbose=0, **kwargs)


def _experiment_files(analysis) -> dict[str, object]:
    """What a run left on disk, without wall-clock times: each trial's files and the decisions."""
    from asynctune.reporting.decisions import read_decisions
    from asynctune.store.layout import read_params

    out: dict[str, object] = {}
    for trial in analysis.trials:
        out[trial.trial_id] = (sorted(f for f in os.listdir(trial.path) if not f.startswith("checkpoint_")),
                               analysis.trial_results(trial.trial_id), read_params(trial.path),
                               open(os.path.join(trial.path, "progress.csv")).read())
    out["decisions"] = [{k: v for k, v in d.items() if k != "time"} for d in read_decisions(analysis.experiment_dir)]
    out["trials"] = [{k: os.path.relpath(v, analysis.experiment_dir) if k == "checkpoint" and v else v
                      for k, v in t.summary().items() if k not in ("path", "start_time", "end_time")}
                     for t in at.ExperimentAnalysis(analysis.experiment_dir).trials]
    return out


def test_batched_recording_leaves_the_same_experiment_as_files(storage):
    batched = _asha_on_digits(storage, "batched", "batched", checkpoint_frequency=3, tensorboard=False)
    files = _asha_on_digits(storage, "files", "files", checkpoint_frequency=3, tensorboard=False)
    assert len(batched.trials) == 60 and sum(t.num_results for t in batched.trials) > 150
    assert _experiment_files(batched) == _experiment_files(files)
    assert batched.best_result["val_error"] == files.best_result["val_error"]
    assert batched.dataframe().drop(columns=["logdir"]).equals(files.dataframe().drop(columns=["logdir"]))
    assert os.path.exists(os.path.join(batched.experiment_dir, "journal.jsonl"))
    assert os.path.exists(os.path.join(batched.experiment_dir, "searcher_state.pkl"))


def test_consolidated_recording_reads_back_as_the_files_do(storage):
    from asynctune.reporting.decisions import read_decisions

    consolidated = _asha_on_digits(storage, "consolidated", "consolidated", checkpoint_frequency=3, tensorboard=False)
    files = _asha_on_digits(storage, "files", "files", checkpoint_frequency=3, tensorboard=False)
    assert len(consolidated.trials) == 60 and sum(t.num_results for t in consolidated.trials) > 150
    reread = at.ExperimentAnalysis(consolidated.experiment_dir)  # from the files alone
    assert abs(reread.start_time - time.time()) < 600  # when it ran, on the wall clock (not virtual 0: 1970)
    for analysis in (consolidated, reread):
        assert [analysis.trial_results(t.trial_id) for t in analysis.trials] == \
            [files.trial_results(t.trial_id) for t in files.trials]
        assert [(t.trial_id, t.config, t.status, t.metric_best) for t in analysis.trials] == \
            [(t.trial_id, t.config, t.status, t.metric_best) for t in files.trials]
        assert analysis.best_result == files.best_result
        assert analysis.dataframe().drop(columns=["logdir"]).equals(files.dataframe().drop(columns=["logdir"]))
    strip = [{k: v for k, v in d.items() if k != "time"} for d in read_decisions(files.experiment_dir)]
    assert [{k: v for k, v in d.items() if k != "time"} for d in read_decisions(consolidated.experiment_dir)] == strip
    # On disk: one results file and no journal; a trial has a directory only for its checkpoints.
    top = set(os.listdir(consolidated.experiment_dir))
    assert "results.jsonl" in top and "journal.jsonl" not in top
    with open(os.path.join(consolidated.experiment_dir, "results.jsonl")) as f:
        assert sum(1 for _ in f) == sum(t.num_results for t in files.trials)
    for trial in consolidated.trials:
        if os.path.isdir(trial.path):
            assert all(name.startswith("checkpoint_") for name in os.listdir(trial.path)), trial.trial_id


def test_a_consolidated_name_is_taken_and_its_interrupted_run_is_rerun_not_resumed(storage, tmp_path):
    from tests.helpers.driver_runs import start_script

    experiment_dir = os.path.join(storage, "killed")
    driver = start_script(tmp_path / "driver.py", f"""
import sys, threading, time
sys.path.insert(0, {ROOT!r})
import asynctune as at
from asynctune.executors.simulated.executor import SimulatedExecutor, Workload, replay

class Slowly(at.Callback):
    def __init__(self):
        self.lock = threading.Lock()  # cannot be pickled: run_spec.pkl keeps no executor to tell the recording

    def on_trial_result(self, trial, result):
        time.sleep(0.01)  # the driver lives long enough to be killed mid-run

workload = Workload.load({DIGITS!r})
at.run(replay, config=workload.space(), num_samples=100000, metric="val_error", mode="min",
       executor=SimulatedExecutor(workload, n_workers=4), storage_path={storage!r}, name="killed",
       verbose=0, callbacks=[Slowly()])
""")
    try:
        path = os.path.join(experiment_dir, "results.jsonl")
        deadline = time.time() + 60
        while not (os.path.exists(path) and os.path.getsize(path) > 0):  # the first results written
            assert driver.poll() is None and time.time() < deadline, driver.stdout.read().decode()
            time.sleep(0.05)
    finally:
        driver.kill()
        driver.wait()
    for executor in (None, SimulatedExecutor(Workload.load(DIGITS))):  # the disk says how it was recorded
        with pytest.raises(ValueError, match="recording='consolidated'.*rerun, not resumed"):
            at.resume(experiment_dir, executor=executor)
    with pytest.raises(ValueError, match="already holds an experiment"):  # its results are not mixed with another's
        simulate(table(4), storage, name="killed")


class BlockResultsFile(at.Callback):
    """Makes the consolidated results.jsonl impossible to open (a directory of that name)."""

    def on_trial_result(self, trial, result) -> None:
        path = os.path.join(os.path.dirname(trial.path), "results.jsonl")
        if not os.path.exists(path):
            os.mkdir(path)


def test_a_consolidated_results_file_that_cannot_be_written_ends_the_run_as_an_error(storage):
    import json

    from asynctune.errors import ResultsNotWritten

    with pytest.raises(ResultsNotWritten, match="results.jsonl .*rerun it"):
        simulate(table(4), storage, name="blocked", callbacks=[BlockResultsFile()])
    with open(os.path.join(storage, "blocked", "experiment.json")) as f:
        assert json.load(f)["status"] == "ERROR"  # not FINISHED with its results missing


def test_a_batched_simulation_resumes_only_with_a_batched_executor(storage):
    stopped = simulate(table(4), storage, name="stopped", recording="batched", time_budget_s=10)
    assert stopped.state["status"] == "STOPPED" and 0 < sum(t.num_results for t in stopped.trials) < 40
    with pytest.raises(ValueError, match="recorded in trial directories.*recording='batched'"):
        at.resume(stopped.experiment_dir, executor=SimulatedExecutor(table(4)))  # consolidated by default
    resumed = at.resume(stopped.experiment_dir, executor=SimulatedExecutor(table(4), recording="batched"),
                        time_budget_s=1000)
    # The trial the budget ended keeps its results; the others run now, every result recorded once.
    assert [t.num_results for t in resumed.trials] == [stopped.trials[0].num_results] + [10] * 3
    assert [len(resumed.trial_results(t.trial_id)) for t in resumed.trials] == [t.num_results for t in resumed.trials]


class FirstResultOnDisk(at.Callback):
    """Reads the trial's result.jsonl as the controller hands a trial's first result around."""

    def __init__(self) -> None:
        self.seen: dict[str, str | None] = {}

    def on_trial_result(self, trial, result) -> None:
        if result["training_iteration"] == 1:
            path = os.path.join(trial.path, "result.jsonl")
            self.seen[trial.trial_id] = open(path).read() if os.path.exists(path) else None


def test_a_batched_run_writes_no_file_per_result_and_files_writes_each_at_once(storage):
    batched, files = FirstResultOnDisk(), FirstResultOnDisk()
    simulate(table(4), storage, workers=2, name="batched", callbacks=[batched], recording="batched")
    simulate(table(4), storage, workers=2, name="files", callbacks=[files], recording="files")
    assert batched.seen and all(text is None for text in batched.seen.values())  # not yet: in memory
    assert len(files.seen) == 4
    assert all(text.count("\n") == 1 and '"training_iteration": 1' in text for text in files.seen.values())


class CountRetained(at.Callback):
    """Every 25 trials, counts the result dicts and trial runtimes alive in the driver."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, int, int]] = []
        self.ended = 0

    def on_trial_complete(self, trial) -> None:
        import gc

        from asynctune.controller.runtime import TrialRuntime

        self.ended += 1
        if self.ended % 25:
            return
        gc.collect()
        objects = gc.get_objects()
        results = sum(1 for o in objects if type(o) is dict and "table_index" in o and "training_iteration" in o)
        runtimes = sum(1 for o in objects if type(o) is TrialRuntime)
        self.samples.append((self.ended, results, runtimes))


def test_the_driver_keeps_no_result_history_of_finished_trials(storage):
    count = CountRetained()
    _asha_on_digits(storage, "memory", "batched", num_samples=200, workers=8, callbacks=[count], variant="stopping")
    assert len(count.samples) == 8
    for ended, results, runtimes in count.samples:
        # The last result of each trial (Trial.last_result) and those in flight, not every result;
        # the runtimes of running and paused trials only, not of every finished one.
        assert results <= ended + 2 * 8 + 25, (ended, results)
        assert runtimes <= 8 + 25 + 8, (ended, runtimes)
