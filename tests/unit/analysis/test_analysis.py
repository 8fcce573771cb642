"""ExperimentAnalysis read back from directories: best trial by scope, tables, several experiments."""

from __future__ import annotations

import json
import math
import os

import pytest

from asynctune.analysis.experiment import ExperimentAnalysis, find_experiments, load_experiments
from asynctune.reporting.decisions import DECISIONS_FILE

# Learning curves of "loss" per trial; trial c has a NaN and reports no metric at its end.
CURVES = {
    "a": [5.0, 4.0, 3.0, 2.5],               # last 2.5, best 2.5, mean 3.625
    "b": [1.0, 6.0, 6.0, 6.0],               # last 6.0, best 1.0, mean 4.75
    "c": [4.0, float("nan"), 3.0, None],     # last: no value, best 3.0, mean 3.5
}


def write_experiment(root: str, name: str, curves: dict[str, list[float | None]], *, metric: str = "loss",
                     mode: str = "min", start: float = 1000.0, status: str = "FINISHED") -> str:
    """An experiment directory as the controller leaves it: experiment.json and result.jsonl per trial."""
    directory = os.path.join(root, name)
    trials = []
    for index, (label, values) in enumerate(curves.items()):
        trial_id = f"trial_{index:05d}"
        path = os.path.join(directory, trial_id)
        os.makedirs(path)
        results = []
        for step, value in enumerate(values, start=1):
            result = {"training_iteration": step, "timestamp": start + 10 * step + index, "trial_id": trial_id}
            if value is not None:
                result[metric] = value
            results.append(result)
        with open(os.path.join(path, "result.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in results))
        finite = [v for v in values if v is not None and math.isfinite(v)]
        trials.append({
            "trial_id": trial_id, "index": index, "status": "ERROR" if label == "c" else "TERMINATED",
            "config": {"label": label, "net": {"width": 8 * (index + 1)}}, "path": path,
            "num_results": len(results), "last_result": results[-1],
            "metric_best": (min if mode == "min" else max)(finite) if finite else None,
            "start_time": start + index, "end_time": start + 50,
        })
    with open(os.path.join(directory, "experiment.json"), "w") as f:
        json.dump({"name": name, "status": status, "metric": metric, "mode": mode, "start_time": start,
                   "trials": trials}, f)
    return directory


@pytest.fixture
def experiment(tmp_path):
    return write_experiment(str(tmp_path), "exp", CURVES)


@pytest.mark.parametrize("scope, mode, label", [
    ("last", "min", "a"), ("last", "max", "b"),
    ("all", "min", "b"), ("all", "max", "b"),
    ("avg", "min", "c"), ("avg", "max", "b"),
    ("last-5-avg", "min", "c"), ("last-10-avg", "max", "b"),
], ids=lambda v: str(v))
def test_get_best_trial_by_scope(experiment, scope, mode, label):
    analysis = ExperimentAnalysis(experiment)
    assert analysis.get_best_trial("loss", mode, scope, include_failed=True).config["label"] == label
    if label == "c":  # c failed: it is the best only when asked
        assert analysis.get_best_trial("loss", mode, scope).config["label"] == "a"


def test_best_of_all_values_agrees_with_reading_every_result(experiment):
    """scope="all" uses the controller's metric_best for the run's own metric and mode; other
    metric/mode pairs read the results: both must give the same answer."""
    analysis = ExperimentAnalysis(experiment)
    fast = {t.trial_id: analysis._score(t, "loss", "min", "all") for t in analysis.trials}
    for trial in analysis.trials:
        trial.metric_best = None  # forces reading result.jsonl
    slow = {t.trial_id: analysis._score(t, "loss", "min", "all") for t in analysis.trials}
    assert fast == slow == {"trial_00000": 2.5, "trial_00001": 1.0, "trial_00002": 3.0}


def test_best_needs_a_metric_and_a_known_scope(experiment):
    analysis = ExperimentAnalysis(experiment)
    with pytest.raises(ValueError, match="scope must be one of"):
        analysis.get_best_trial("loss", "min", "best")
    assert analysis.get_best_trial("accuracy", "max") is None  # no trial reported it


def test_trial_dataframes_hold_every_result(experiment):
    frames = ExperimentAnalysis(experiment).trial_dataframes()
    assert sorted(frames) == ["trial_00000", "trial_00001", "trial_00002"]
    assert list(frames["trial_00000"]["loss"]) == CURVES["a"]
    assert list(frames["trial_00001"]["training_iteration"]) == [1, 2, 3, 4]


def test_best_so_far_improves_over_wall_clock_time(experiment):
    points = ExperimentAnalysis(experiment).best_so_far()
    # a's first result (t=10 s) is the first best; b's first (t=11 s) the best ever
    assert [(p["trial_id"], p["value"], p["time_s"]) for p in points] == [
        ("trial_00000", 5.0, 10.0), ("trial_00001", 1.0, 11.0)]
    points = ExperimentAnalysis(experiment).best_so_far("loss", "max")
    values = [p["value"] for p in points]
    assert values == sorted(values) and values[-1] == 6.0
    assert all(b["time_s"] >= a["time_s"] for a, b in zip(points, points[1:]))


def test_summary_counts_trials_by_status(experiment):
    row = ExperimentAnalysis(experiment).summary()
    assert (row["trials"], row["FINISHED"], row["ERROR"]) == (3, 2, 1)  # "TERMINATED" in the file: FINISHED
    # "best" is each trial's best-ever value by default: b's 1.0 (its first result), not a's last 2.5
    assert (row["best"], row["best_trial_id"], row["metric"], row["scope"]) == (1.0, "trial_00001", "loss", "all")
    row = ExperimentAnalysis(experiment).summary(scope="last")
    assert (row["best"], row["best_trial_id"]) == (2.5, "trial_00000")


def test_compare_puts_experiments_side_by_side(tmp_path):
    first = write_experiment(str(tmp_path), "first", CURVES)
    second = write_experiment(str(tmp_path), "second", {"x": [0.5, 0.25]})
    frame = ExperimentAnalysis.compare([first, second], "loss", "min", scope="all")
    assert list(frame["experiment"]) == ["first", "second"]
    assert list(frame["best"]) == [1.0, 0.25]
    assert list(frame["config/label"]) == ["b", "x"]


def test_load_experiments_combines_trials_with_an_experiment_column(tmp_path):
    write_experiment(str(tmp_path), "first", CURVES, start=1000.0)
    write_experiment(str(tmp_path), "second", {"x": [0.5, 0.25]}, start=2000.0)
    os.makedirs(tmp_path / "not_an_experiment")
    assert [os.path.basename(p) for p in find_experiments(str(tmp_path))] == ["first", "second"]
    frame = load_experiments(str(tmp_path))
    assert len(frame) == 4
    assert frame.groupby("experiment")["trial_id"].count().to_dict() == {"first": 3, "second": 1}
    assert frame.groupby("experiment")["loss"].min().to_dict() == {"first": 2.5, "second": 0.25}


def test_find_experiments_rejects_a_missing_root(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        find_experiments(str(tmp_path / "missing"))


def test_decisions_are_read_back_and_a_torn_last_line_is_skipped(experiment):
    with open(os.path.join(experiment, DECISIONS_FILE), "w") as f:
        f.write(json.dumps({"trial_id": "trial_00001", "decision": "STOP", "iteration": 2}) + "\n")
        f.write('{"trial_id": "trial_00000", "decis')
    assert [d["decision"] for d in ExperimentAnalysis(experiment).decisions()] == ["STOP"]


def test_a_directory_without_experiment_json_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="not an asynctune experiment directory"):
        ExperimentAnalysis(str(tmp_path))


def typed_config_trial(config):
    import asynctune
    asynctune.report(loss=float(sum(config["sizes"])))


def test_configs_read_back_keep_the_types_json_loses(tmp_path):
    # A tuple, a class and a numpy value in the config came back from disk as a list and reprs:
    # best_config after a restart was not the config the trial ran with (Ray reads params.pkl).
    import fractions
    import subprocess
    import sys

    import numpy as np

    import asynctune

    config = {"sizes": asynctune.grid_search([(64, 64), (32,)]), "kind": fractions.Fraction, "scale": np.float32(0.5),
              "plain": {"lr": 0.1}}
    asynctune.run(typed_config_trial, config=config, metric="loss", mode="min", storage_path=str(tmp_path),
                  name="typed", verbose=0)
    directory = str(tmp_path / "typed")
    analysis = ExperimentAnalysis(directory)
    assert analysis.best_config == {"sizes": (32,), "kind": fractions.Fraction, "scale": np.float32(0.5),
                                    "plain": {"lr": 0.1}}
    assert type(analysis.best_config["scale"]) is np.float32
    # The CLI's view unpickles nothing: JSON's view.
    assert ExperimentAnalysis(directory, typed_configs=False).best_config["sizes"] == [32]
    # A params.pkl signed with another key (a directory copied from another user) is not
    # unpickled: the JSON view stands, and reading does not fail.
    other_key = tmp_path / "other-key"
    code = ("import sys\nfrom asynctune.analysis.experiment import ExperimentAnalysis\n"
            "print(ExperimentAnalysis(sys.argv[1]).best_config['sizes'])\n")
    done = subprocess.run([sys.executable, "-c", code, directory], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ASYNCTUNE_KEY_FILE": str(other_key)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[32]"
