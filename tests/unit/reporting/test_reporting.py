"""Loggers: TensorBoard event files read back record by record, the decisions log, the console view."""

from __future__ import annotations

import glob
import io
import json
import math
import os
import threading
import time

import numpy as np
import psutil
import pytest

import asynctune as at
from asynctune import CONTINUE, PAUSE, STOP, Mutate, Scheduler, Status, Trial
from asynctune.reporting.console import ConsoleReporter
from asynctune.reporting.decisions import DECISIONS_FILE, read_decisions
from asynctune.reporting.tensorboard import TensorBoardLogger
from asynctune.store.names import tensorboard_file

pytest.importorskip("tensorboardX.proto.event_pb2")
from tensorboardX.proto import api_pb2  # noqa: E402

from tests.helpers.tensorboard_events import plugin_data, run_events, scalars  # noqa: E402
from tests.helpers.trainables import counting  # noqa: E402


def quadratic(config):
    for step in range(1, 5):
        at.report(loss=(config["x"] - 3) ** 2 + 1 / step, extra={"norm": float(step)}, phase="train")
        if config.get("fail") and step == 2:
            raise RuntimeError("diverged")


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("tb"))
    analysis = at.run(
        quadratic, config={"x": at.grid_search([1.0, 3.0]), "opt": at.grid_search(["sgd", "adam"]),
                           "fail": at.grid_search([False, True]), "constant": 7},
        metric="loss", mode="min", storage_path=storage, name="tb", verbose=0, tensorboard=False,
        callbacks=[TensorBoardLogger(metric="loss", space=at.Space({
            "x": at.grid_search([1.0, 3.0]), "opt": at.grid_search(["sgd", "adam"]),
            "fail": at.grid_search([False, True]), "constant": 7}), min_interval_s=0)])
    return analysis


def test_every_result_is_a_scalar_at_its_training_iteration(tensorboard_run):
    for trial in tensorboard_run.trials:
        events = run_events(trial.path)
        expected = [(r["training_iteration"], r["loss"]) for r in tensorboard_run.trial_results(trial.trial_id)]
        assert [(s, pytest.approx(v, rel=1e-6)) for s, v in expected] == scalars(events, "loss")
        assert [v for _, v in scalars(events, "extra/norm")] == [float(s) for s, _ in expected]
        tags = {v.tag for e in events for v in e.summary.value}
        assert {"time_total_s", "time_this_iter_s"} <= tags
        assert not tags & {"phase", "trial_id", "pid", "timestamp", "training_iteration"}  # strings and excluded keys


def test_each_trial_is_an_hparams_session_with_its_status(tensorboard_run):
    for trial in tensorboard_run.trials:
        events = run_events(trial.path)
        (start,) = plugin_data(events, "_hparams_/session_start_info")
        hparams = start.session_start_info.hparams
        assert hparams["x"].number_value == trial.config["x"]
        assert hparams["opt"].string_value == trial.config["opt"]
        assert hparams["fail"].bool_value == trial.config["fail"]
        assert "constant" not in hparams  # with the space, only what was searched
        (end,) = plugin_data(events, "_hparams_/session_end_info")
        failed = trial.status is Status.ERROR
        assert end.session_end_info.status == api_pb2.Status.Value("STATUS_FAILURE" if failed else "STATUS_SUCCESS")
    assert sum(t.status is Status.ERROR for t in tensorboard_run.trials) == 4


def test_the_experiment_summary_lists_every_hyperparameter_and_metric(tensorboard_run):
    (data,) = plugin_data(run_events(tensorboard_run.experiment_dir), "_hparams_/experiment")
    experiment = data.experiment
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"x", "opt", "fail"}
    assert list(infos["opt"].domain_discrete) == ["adam", "sgd"]
    assert (infos["x"].domain_interval.min_value, infos["x"].domain_interval.max_value) == (1.0, 3.0)
    assert infos["fail"].type == api_pb2.DataType.Value("DATA_TYPE_BOOL")
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert metrics[0] == "loss" and "extra/norm" in metrics and "phase" not in metrics


def test_tensorboard_itself_reads_the_scalars_and_the_hparams_sessions(tensorboard_run):
    """TensorBoard's own event reader and HParams plugin (the test extra installs tensorboard)."""
    pytest.importorskip("tensorboard")
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2 as tb_api, backend_context, list_session_groups
    from google.protobuf import json_format

    logdir = tensorboard_run.experiment_dir
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=logdir))
    request = json_format.Parse('{"startIndex": 0, "sliceSize": 100, "allowedStatuses": '
                                '["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}',
                                tb_api.ListSessionGroupsRequest())
    groups = list_session_groups.Handler(context.RequestContext(), backend, "", request).run().session_groups
    assert sorted(g.name for g in groups) == sorted(t.trial_id for t in tensorboard_run.trials)
    for group in groups:
        trial = next(t for t in tensorboard_run.trials if t.trial_id == group.name)
        last = {m.name.tag: m.value for m in group.metric_values}
        assert last["loss"] == pytest.approx(trial.last_result["loss"], rel=1e-6)
        assert group.hparams["opt"].string_value == trial.config["opt"]


def test_results_in_a_burst_are_thinned_but_the_last_is_written(tmp_path):
    logger = TensorBoardLogger(metric="loss", min_interval_s=3600)
    trial = Trial(trial_id="trial_00000", config={"lr": 0.1}, path=str(tmp_path / "trial_00000"))
    logger.on_experiment_start(str(tmp_path), [trial])
    logger.on_trial_start(trial)
    for step in range(1, 101):
        trial.num_results = step
        logger.on_trial_result(trial, {"loss": 1 / step, "training_iteration": step})
    logger.on_tick([trial])  # writes the latest of the burst
    logger.flush()
    assert [s for s, _ in scalars(run_events(trial.path), "loss")] == [1, 100]
    trial.status = Status.TERMINATED
    logger.on_trial_complete(trial)
    logger.on_experiment_end([trial])
    assert [s for s, _ in scalars(run_events(trial.path), "loss")] == [1, 100]


def open_event_files(directory: str) -> list[str]:
    """Event files under `directory` that this process holds open."""
    return [f.path for f in psutil.Process().open_files() if f.path.startswith(directory) and "tfevents" in f.path]


def test_a_paused_trial_closes_its_file_and_writes_a_new_one_when_it_runs_again(tmp_path):
    logger = TensorBoardLogger(min_interval_s=0)
    trial = Trial(trial_id="trial_00000", config={"lr": 0.1}, path=str(tmp_path / "trial_00000"))
    logger.on_experiment_start(str(tmp_path), [trial])
    for step in (1, 2):
        logger.on_trial_start(trial)
        trial.num_results = step
        logger.on_trial_result(trial, {"loss": float(step), "training_iteration": step})
        logger.flush()  # the I/O thread has written it
        assert open_event_files(trial.path)
        logger.on_trial_decision(trial, "PAUSE")
        logger.flush()
        assert open_event_files(trial.path) == []
    logger.flush()
    assert len(glob.glob(os.path.join(trial.path, "events.out.tfevents.*"))) == 2
    events = run_events(trial.path)
    assert scalars(events, "loss") == [(1, 1.0), (2, 2.0)]
    assert len(plugin_data(events, "_hparams_/session_start_info")) == 1


def test_event_files_of_one_second_sort_in_the_order_they_were_made(tmp_path):
    # TensorBoard reads a run's event files in name order; a trial paused and run again within
    # one second gets a second file whose serial may have one digit more (9, then 10).
    made = [tensorboard_file(str(tmp_path), 1_700_000_000, "host", 4242, serial) for serial in (8, 9, 10, 11, 100)]
    assert sorted(made) == made


@pytest.mark.parametrize("result, expected", [
    ({"loss": 0.5, "training_iteration": 3}, {"loss": 0.5}),
    ({"loss": np.float32(0.25), "n": np.int64(4), "flag": True, "training_iteration": 300}, {"loss": 0.25, "n": 4.0}),
    ({"val": {"loss": 2.0, "acc": {"top1": 0.5}}, "training_iteration": 1}, {"val/loss": 2.0, "val/acc/top1": 0.5}),
    ({"huge": 1e300, "tiny": -1e300, "training_iteration": 2**40}, {"huge": math.inf, "tiny": -math.inf}),
    ({"nan": float("nan"), "training_iteration": 1}, {"nan": "nan"}),
], ids=["floats", "numpy-and-bool", "nested", "beyond-float32", "nan"])
def test_a_result_is_one_event_with_a_value_per_number(tmp_path, result, expected):
    logger = TensorBoardLogger(min_interval_s=0)
    trial = Trial(trial_id="trial_00000", config={}, path=str(tmp_path / "trial_00000"))
    logger.on_experiment_start(str(tmp_path), [trial])
    logger.on_trial_result(trial, {**result, "timestamp": 1234.5})
    logger.on_experiment_end([trial])
    (event,) = [e for e in run_events(trial.path) if e.summary.value]
    assert (event.step, event.wall_time) == (result["training_iteration"], 1234.5)
    values = {v.tag: v.simple_value for v in event.summary.value}
    assert set(values) == set(expected)
    for tag, value in expected.items():
        if value == "nan":
            assert math.isnan(values[tag])
        else:
            assert values[tag] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"metric": 3}, "metric must be a string"),
    ({"exclude": "loss"}, "exclude must be a collection"),
    ({"min_interval_s": -1}, "min_interval_s must be a number >= 0"),
], ids=["metric", "exclude", "min_interval_s"])
def test_tensorboard_logger_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TensorBoardLogger(**kwargs)


def test_tensorboard_per_result_cost_is_small(tmp_path):
    """The per-result path stays cheap even without thinning (a loose bound for a loaded CI box;
    CPU time, which other processes on the machine do not inflate as they do the wall clock)."""
    logger = TensorBoardLogger(min_interval_s=0)
    trial = Trial(trial_id="trial_00000", config={}, path=str(tmp_path / "t"))
    logger.on_experiment_start(str(tmp_path), [trial])
    result = {"loss": 0.5, "acc": 0.9, "trial_id": "trial_00000", "training_iteration": 1, "time_this_iter_s": 0.1,
              "time_total_s": 1.0, "timestamp": time.time(), "hostname": "h", "pid": 1}
    start = time.process_time()
    for _ in range(20000):
        logger.on_trial_result(trial, result)
    logger.on_tick([trial])
    per_result = (time.process_time() - start) / 20000
    logger.on_experiment_end([trial])
    assert per_result < 100e-6, f"{per_result * 1e6:.1f} us per result"


# The decisions log -------------------------------------------------------------------------------


class ScriptedScheduler(Scheduler):
    """Stops x=0 at iteration 2, pauses every trial once at iteration 3, clones x=5 onto x=3 at 4."""

    def __init__(self) -> None:
        super().__init__()
        self.paused: set[str] = set()
        self.cloned = False

    def on_trial_result(self, trial, result):
        iteration = result["training_iteration"]
        if trial.config["x"] == 0 and iteration == 2:
            return STOP
        if iteration == 3 and trial.trial_id not in self.paused:
            self.paused.add(trial.trial_id)
            return PAUSE
        if trial.config["x"] == 5 and iteration == 4 and not self.cloned:
            self.cloned = True
            return Mutate({"x": 3}, trial.checkpoint)
        return CONTINUE


def test_decisions_are_logged_with_trial_and_iteration(storage):
    analysis = at.run(counting, config={"x": at.grid_search([0, 3, 5])}, metric="loss", mode="min",
                      scheduler=ScriptedScheduler(), storage_path=storage, name="decide", verbose=0,
                      max_concurrent_trials=1)
    decisions = read_decisions(analysis.experiment_dir)
    seen = {(d["trial_id"], d["decision"], d["iteration"]) for d in decisions}
    assert seen == {("trial_00000", "STOP", 2), ("trial_00001", "PAUSE", 3), ("trial_00002", "PAUSE", 3),
                    ("trial_00002", "MUTATE", 4)}
    mutate = next(d for d in decisions if d["decision"] == "MUTATE")
    assert "'x': 3" in mutate["detail"]
    assert all(isinstance(d["time"], float) and d["time_total_s"] is not None for d in decisions)
    assert analysis.decisions() == decisions
    with open(os.path.join(analysis.experiment_dir, DECISIONS_FILE)) as f:
        assert all(json.loads(line) for line in f)


# The console -------------------------------------------------------------------------------------


def make_trials(statuses: list[Status], bests: list[float | None]) -> list[Trial]:
    trials = []
    for index, (status, best) in enumerate(zip(statuses, bests)):
        trial = Trial(trial_id=f"trial_{index:05d}", config={"lr": 0.1 * (index + 1)}, index=index, status=status)
        trial.metric_best = best
        trial.last_result = {"loss": best, "training_iteration": 3, "time_total_s": 1.5} if best is not None else None
        trials.append(trial)
    return trials


def test_the_summary_line_counts_trials_best_and_time_left():
    out = io.StringIO()
    console = ConsoleReporter(metric="loss", mode="min", space=at.Space({"lr": at.uniform(0, 1)}), file=out,
                              time_budget_s=3600, num_samples=8)
    console.on_experiment_start("/tmp/x", [])
    console._start = time.time() - 100.5  # 100.5 s into the experiment (the half keeps rounding stable)
    trials = make_trials([Status.TERMINATED, Status.TERMINATED, Status.RUNNING, Status.ERROR],
                         [0.5, 0.25, 0.75, None])
    line = console.summary(trials)
    assert line.startswith("Trials: 4/8 (1 RUNNING, 1 ERROR, 2 FINISHED)")
    assert "elapsed 00:01:40" in line and "budget left 00:58:19" in line
    assert "~00:02:47 to go" in line  # 3 trials finished in 100.5 s: the other 5 at that rate take 167.5 s
    assert "best-ever loss=0.25 (trial_00001)" in line


def test_decisions_show_in_the_summary_the_table_and_the_event_lines():
    out = io.StringIO()
    console = ConsoleReporter(metric="loss", mode="min", file=out, max_events=2)
    console.on_experiment_start("/tmp/x", [])
    trials = make_trials([Status.EARLY_STOPPED, Status.PAUSED, Status.RUNNING], [0.5, 0.25, 0.75])
    console.on_trial_decision(trials[0], "STOP", "rung 3")
    console.on_trial_decision(trials[1], "PAUSE")
    console.on_trial_decision(trials[2], "MUTATE", "config={'lr': " + "9" * 200 + "}")
    assert console.summary(trials).startswith("Trials: 3 (1 RUNNING, 1 PAUSED, 1 EARLY_STOPPED)")
    assert console.summary(trials).endswith("| 1 early-stopped, 1 paused, 1 cloned")
    assert len(console._events) == 2  # max_events
    assert "trial_00002 cloned at iteration 3 (config={'lr': 999" in console._events[-1]
    assert console._events[-1].endswith("...)")
    console.on_experiment_end(trials)
    printed = out.getvalue()
    assert "early-stopped@3" in printed and "paused@3" in printed and "cloned@3" in printed
    assert "trial_00001 paused at iteration 3" in printed


@pytest.mark.parametrize("kwargs, message", [
    ({"verbose": 5}, "verbose must be 0, 1, 2 or 3, got verbose=5"),
    ({"max_rows": 0}, "max_rows must be >= 1"),
    ({"max_events": -1}, "max_events must be >= 0"),
], ids=["verbose", "max_rows", "max_events"])
def test_console_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConsoleReporter(metric="loss", mode="min", **kwargs)


def test_an_experiment_without_results_closes_its_files(tmp_path):
    logger = TensorBoardLogger()
    trial = Trial(trial_id="trial_00000", config={"lr": 0.1}, path=str(tmp_path / "trial_00000"))
    logger.on_experiment_start(str(tmp_path), [trial])
    logger.on_trial_start(trial)
    trial.status = Status.ERROR
    logger.on_experiment_end([trial])  # failed before its first result
    (end,) = plugin_data(run_events(trial.path), "_hparams_/session_end_info")
    assert end.session_end_info.status == api_pb2.Status.Value("STATUS_FAILURE")
    assert not [t for t in threading.enumerate() if t.name.startswith("asynctune-tensorboard")]
    assert not glob.glob(str(tmp_path / "events.out.tfevents.*"))  # no experiment summary without results


@pytest.mark.parametrize("tensorboard, written", [(None, True), (False, False)], ids=["default", "off"])
def test_run_writes_tensorboard_files_unless_told_not_to(storage, tensorboard, written):
    analysis = at.run(quadratic, config={"x": 1.0}, storage_path=storage, verbose=0, tensorboard=tensorboard)
    (trial,) = analysis.trials
    assert bool(glob.glob(os.path.join(trial.path, "events.out.tfevents.*"))) == written
    assert bool(glob.glob(os.path.join(analysis.experiment_dir, "events.out.tfevents.*"))) == written
