"""Several metrics: run(metric=[...], mode=[...]), its checks before any trial, the metric check on
the first result, and the analysis' Pareto front, with real worker processes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import asynctune as at
from tests.helpers.driver_runs import count_results, wait_for_results
from asynctune.algorithms.base import Scheduler, Searcher
from asynctune.core.trial import CONTINUE


def two_objectives(config):
    """A trial whose last result is (x, 1 - x) for a config x: every point is on one front,
    and `lift` moves a point up, dominated by the point with the same x."""
    x = config["x"]
    for step in range(2):
        at.report(error=x + config.get("lift", 0.0), latency=1 - x + config.get("lift", 0.0), step=step)


def _no_trial_started(storage):
    if not os.path.exists(storage):
        return True
    return not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


BAD = {
    "modes shorter than metrics": (dict(metric=["error", "latency"], mode=["min"]), "one mode per metric"),
    "duplicate metric": (dict(metric=["error", "error"], mode="min"), "each metric may appear once"),
    "bad mode in list": (dict(metric=["error", "latency"], mode=["min", "lowest"]), "each mode must be 'min' or 'max'"),
    "modes without metrics": (dict(metric="error", mode=["min", "min"]), "a list of modes needs a list of metrics"),
    "empty metric list": (dict(metric=[], mode=[]), "non-empty list of metric names"),
    "metric not a name": (dict(metric=["error", 3], mode="min"), "non-empty list of metric names"),
    "single-objective scheduler": (dict(metric=["error", "latency"], mode="min", scheduler=at.ASHAScheduler()),
                                   "ASHAScheduler ranks trials by one metric.*MOASHAScheduler"),
    "single-objective searcher": (dict(metric=["error", "latency"], mode="min", search_alg=at.TPESearch()),
                                  "TPESearch ranks trials by one metric.*OptunaSearch"),
    "single-objective searcher behind a limiter": (
        dict(metric=["error", "latency"], mode="min", search_alg=at.ConcurrencyLimiter(at.SkOptSearch(), 2)),
        "SkOptSearch ranks trials by one metric.*RandomSearch"),
    "median stopping": (dict(metric=["error", "latency"], mode="min", scheduler=at.MedianStoppingRule()),
                        "MedianStoppingRule ranks trials by one metric"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_objectives_fail_before_any_trial(case, storage):
    kwargs, message = case
    with pytest.raises(ValueError, match=message):
        at.run(two_objectives, config={"x": at.uniform(0, 1)}, storage_path=storage, verbose=0, **kwargs)
    assert _no_trial_started(storage)


def test_objectives_are_checked_where_algorithms_are_built():
    with pytest.raises(ValueError, match="ASHAScheduler optimises one metric"):
        at.ASHAScheduler(metric=["error", "latency"], mode="min")
    with pytest.raises(ValueError, match="TPESearch optimises one metric"):
        at.TPESearch(metric=["error", "latency"], mode=["min", "max"])


def test_a_single_objective_scheduler_with_its_own_metric_ranks_by_it(storage):
    """run()'s several metrics do not reach a scheduler given its own: it ranks by that one,
    with the mode run() gave it."""
    scheduler = at.ASHAScheduler(metric="latency", max_t=2, grace_period=1)
    analysis = at.run(two_objectives, config={"x": at.grid_search([0.2, 0.8])}, metric=["error", "latency"],
                      mode=["min", "max"], scheduler=scheduler, storage_path=storage, verbose=0)
    assert (scheduler.metric, scheduler.mode) == ("latency", "max")
    assert len(analysis.trials) == 2


class _RecordingScheduler(Scheduler):
    multi_objective = True

    def on_trial_result(self, trial, result):
        return CONTINUE


class _RecordingSearcher(Searcher):
    multi_objective = True

    def suggest(self, trial_id):
        return {"x": 0.5}


def test_multi_objective_algorithms_get_lists(storage):
    scheduler, searcher = _RecordingScheduler(), _RecordingSearcher()
    at.run(two_objectives, metric=("error", "latency"), mode="min", scheduler=scheduler, search_alg=searcher,
           storage_path=storage, verbose=0)
    assert (scheduler.metric, scheduler.mode) == (["error", "latency"], ["min", "min"])
    assert (searcher.metric, searcher.mode) == (["error", "latency"], ["min", "min"])


def test_one_metric_in_a_list_is_one_metric(storage):
    analysis = at.run(two_objectives, config={"x": at.grid_search([0.2, 0.8])}, metric=["error"], mode=["min"],
                      scheduler=at.ASHAScheduler(max_t=2), storage_path=storage, verbose=0)
    assert analysis.best_config == {"x": 0.2}


def test_every_objective_is_checked_on_the_first_result(storage):
    with pytest.raises(ValueError, match=r"metric='latncy' is not in trial_00000's first result; it reported: error, "
                                         r"latency, step.*nor is 'eror'"):
        at.run(two_objectives, config={"x": 0.5}, metric=["error", "latncy", "eror"], mode="min",
               storage_path=storage, verbose=0)


def test_random_search_runs_with_two_metrics_and_returns_the_front(storage, capsys):
    """Random search ignores the metric, so it just works; the front is by last results, and the
    console's final table shows every metric and the front's size instead of a best."""
    space = {"x": at.grid_search([0.1, 0.5, 0.9]), "lift": at.grid_search([0.0, 0.3])}
    analysis = at.run(two_objectives, config=space, metric=["error", "latency"], mode=["min", "min"],
                      storage_path=storage, verbose=1)
    console = capsys.readouterr().out
    assert "Pareto front: 3 trials (by last results)" in console and "best-ever" not in console
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in console.splitlines() if line.startswith("|")]
    assert rows[0][-3:] == ["error", "latency", "front"], rows[0]
    marked = [row[0] for row in rows[1:] if row[-1] == "*"]
    assert sorted(marked) == sorted(t.trial_id for t in analysis.pareto_front())
    front = analysis.pareto_front()
    assert sorted(t.config["x"] for t in front) == [0.1, 0.5, 0.9]
    assert all(t.config["lift"] == 0.0 for t in front)
    frame = analysis.dataframe()
    assert {"error", "latency", "pareto_front"} <= set(frame.columns)
    assert frame["pareto_front"].sum() == 3
    with pytest.raises(ValueError, match="several metrics.*pareto_front()"):
        analysis.best_config
    assert analysis.get_best_trial("latency").config == {"x": 0.9, "lift": 0.0}  # run()'s mode for it
    # read back from the directory: the same front; another pair of objectives is another front
    later = at.ExperimentAnalysis(analysis.experiment_dir)
    assert [t.trial_id for t in later.pareto_front()] == [t.trial_id for t in front]
    assert [t.config for t in later.pareto_front(["error", "latency"], ["max", "max"])] == \
        [{"x": 0.1, "lift": 0.3}, {"x": 0.5, "lift": 0.3}, {"x": 0.9, "lift": 0.3}]
    assert later.summary()["pareto_front"] == 3


def test_threshold_stop_uses_each_metrics_mode(storage):
    """stop={"error": 0.3} with mode "min" for error means "down to 0.3", as with one metric."""
    analysis = at.run(two_objectives, config={"x": at.grid_search([0.1, 0.9])}, metric=["error", "latency"],
                      mode=["min", "max"], stop={"error": 0.3}, storage_path=storage, verbose=0)
    iterations = {t.config["x"]: t.iteration for t in analysis.trials}
    assert iterations == {0.1: 1, 0.9: 2}


def test_pareto_front_leaves_out_missing_and_non_finite(storage):
    def train(config):
        at.report(error=config["error"], latency=1.0)

    analysis = at.run(train, config={"error": at.grid_search([0.5, math.nan, 0.7])}, metric=["error", "latency"],
                      mode="min", storage_path=storage, verbose=0)
    assert [t.config["error"] for t in analysis.pareto_front()] == [0.5]


# --- ZDT1: a known front, found by random search ---------------------------------------------------

def zdt1(config):
    """ZDT1 with two variables (Zitzler, Deb and Thiele 2000): the true front is f2 = 1 - sqrt(f1)
    for f1 in [0, 1], reached where x2 = 0."""
    f1 = config["x1"]
    g = 1 + 9 * config["x2"]
    at.report(f1=f1, f2=g * (1 - math.sqrt(f1 / g)))


@pytest.fixture(scope="module")
def zdt1_run(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("zdt1"))
    return at.run(zdt1, config={"x1": at.uniform(0, 1), "x2": at.uniform(0, 1)}, num_samples=300,
                  metric=["f1", "f2"], mode=["min", "min"], seed=0, storage_path=storage, name="zdt1", verbose=0)


def _points(trials):
    return [(t.last_result["f1"], t.last_result["f2"]) for t in trials]


def _dominates(a, b):
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def test_random_search_finds_a_front_close_to_zdt1s(zdt1_run):
    everyone = _points(zdt1_run.trials)
    front = zdt1_run.pareto_front()
    points = _points(front)
    # exactly the non-dominated trials: none of them dominated, every other one dominated
    assert not any(_dominates(q, p) for p in points for q in everyone)
    others = [p for t, p in zip(zdt1_run.trials, everyone) if t not in front]
    assert all(any(_dominates(q, p) for q in points) for p in others)
    # close to the true front: IGD (mean distance from the true front to the nearest point found)
    truth = [(f1, 1 - math.sqrt(f1)) for f1 in (i / 100 for i in range(101))]
    igd = sum(min(math.dist(t, p) for p in points) for t in truth) / len(truth)
    assert igd < 0.12, igd
    # and the front's points near the true one where it lies (f2 <= 1): mean vertical gap
    near = [f2 - (1 - math.sqrt(f1)) for f1, f2 in points if f2 <= 1]
    assert len(near) >= 5 and sum(near) / len(near) < 0.2, near


def test_show_lists_the_front(zdt1_run, capsys):
    from asynctune.cli import main

    assert main(["show", zdt1_run.experiment_dir, "-n", "100"]) == 0
    out = capsys.readouterr().out
    front = zdt1_run.pareto_front()
    assert f"Pareto front: {len(front)} of 300 trials" in out
    shown = [line.split()[0] for line in out.splitlines() if line.strip().startswith("trial_")]
    assert sorted(shown) == sorted(t.trial_id for t in front)
    f1s = [t.last_result["f1"] for t in sorted(front, key=lambda t: shown.index(t.trial_id))]
    assert f1s == sorted(f1s)  # along the front, by the first metric
    assert main(["show", zdt1_run.experiment_dir, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["metric"] == ["f1", "f2"] and answer["mode"] == ["min", "min"]
    assert {p["trial_id"] for p in answer["pareto_front"]} == {t.trial_id for t in front}
    assert main(["show", zdt1_run.experiment_dir, "--metric", "f2", "-n", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best_result"]["f2"] == min(p[1] for p in _points(front))
    assert main(["ls", os.path.dirname(zdt1_run.experiment_dir)]) == 0
    assert f"front of {len(front)}" in capsys.readouterr().out


def test_plot_draws_the_front(zdt1_run, tmp_path):
    out = tmp_path / "plots"
    done = subprocess.run([sys.executable, "-m", "asynctune.cli", "plot", zdt1_run.experiment_dir, "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(out / "pareto_front.png")]
    from matplotlib.image import imread

    image = imread(out / "pareto_front.png")
    red = (image[..., 0] > 0.7) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 200  # the front's points and line are drawn
    done = subprocess.run([sys.executable, "-m", "asynctune.cli", "plot", zdt1_run.experiment_dir, "-o", str(out),
                           "--metric", "f2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "learning_curves.png" in done.stdout, done.stderr


def test_dashboard_answers_objectives_and_the_front(zdt1_run):
    from asynctune.dashboard.data import LiveExperiment

    experiment = LiveExperiment(zdt1_run.experiment_dir)
    answer = json.loads(experiment.trials_json())
    assert answer["experiment"]["objectives"] == [{"metric": "f1", "mode": "min"}, {"metric": "f2", "mode": "min"}]
    assert answer["experiment"]["pareto_front"] == len(zdt1_run.pareto_front())
    on_front = {row["trial_id"] for row in answer["trials"] if row["pareto"]}
    assert on_front == {t.trial_id for t in zdt1_run.pareto_front()}
    row = answer["trials"][0]
    assert row["objectives"] == {"f1": row["latest"], "f2": zdt1_run.trials[0].last_result["f2"]}
    curves = json.loads(experiment.curves_json())
    assert (curves["metric"], curves["mode"]) == ("f1", "min") and len(curves["curves"]) == 300
    assert curves["best_so_far"][-1][1] == min(p[0] for p in _points(zdt1_run.trials))


# --- MO-ASHA --------------------------------------------------------------------------------------

# (error, latency) for each trial, in the order they start: A, then B dominated by A, C on the
# front, D dominated by C, E on the front, F dominated by E.
POINTS = [[0.1, 0.9], [0.2, 0.95], [0.9, 0.1], [0.95, 0.2], [0.5, 0.5], [0.6, 0.6]]
DOMINATED, NON_DOMINATED = [1, 3, 5], [0, 2, 4]


def fixed_point(config):
    error, latency = config["point"]
    for _ in range(4):
        at.report(error=error, latency=latency)


def _run_one_by_one(points, scheduler, storage):
    """Each trial runs alone, in the order of `points`: each arrives at a rung after the previous."""
    analysis = at.run(fixed_point, config={"point": at.grid_search(points)}, metric=["error", "latency"],
                      mode="min", scheduler=scheduler, max_concurrent_trials=1, storage_path=storage, verbose=0)
    return analysis, [t.iteration for t in sorted(analysis.trials, key=lambda t: points.index(t.config["point"]))]


@pytest.mark.parametrize("variant", ["stopping", "promotion"])
def test_mo_asha_stops_dominated_trials_at_the_first_rung(variant, storage):
    scheduler = at.MOASHAScheduler(max_t=4, grace_period=1, reduction_factor=2, variant=variant)
    analysis, iterations = _run_one_by_one(POINTS, scheduler, storage)
    assert all(iterations[i] == 1 for i in DOMINATED), iterations
    assert all(iterations[i] >= 2 for i in NON_DOMINATED), iterations  # promoted past the first rung
    assert iterations[0] == 4  # the first, best in error, runs to max_t
    assert len(scheduler.rung_records()[0][0]) == 6
    assert sorted(POINTS.index(t.config["point"]) for t in analysis.pareto_front()) == NON_DOMINATED


def test_mo_asha_breaks_ties_in_the_front_by_spread(storage):
    """Four non-dominated trials, eta = 2: the epsilon-net keeps the far end of the front (the
    third) over the middle one (the second), where ranking by the first metric would not."""
    points = [[0.0, 1.0], [0.45, 0.55], [1.0, 0.0], [0.5, 0.5]]
    scheduler = at.MOASHAScheduler(max_t=4, grace_period=1, reduction_factor=2)
    _, iterations = _run_one_by_one(points, scheduler, storage)
    # 1st: alone; 2nd: top 1 of 2 is the 1st; 3rd: top 2 of 3 are the 1st and the far 3rd; 4th: top 2 of 4
    assert [it > 1 for it in iterations] == [True, False, True, False], iterations


def test_mo_asha_takes_lists_and_checks_them():
    scheduler = at.MOASHAScheduler(metric=["error", "latency"], mode=["min", "max"])
    assert (scheduler.metric, scheduler.mode) == (["error", "latency"], ["min", "max"])
    with pytest.raises(ValueError, match="one mode per metric"):
        at.MOASHAScheduler(metric=["error", "latency"], mode=["min"])
    with pytest.raises(ValueError, match="variant must be one of"):
        at.MOASHAScheduler(variant="halving")
    unset = at.MOASHAScheduler()
    with pytest.raises(ValueError, match="needs a metric and a mode"):
        unset.validate()


# --- resume ---------------------------------------------------------------------------------------

RESUMABLE = textwrap.dedent("""
    import sys, time
    import asynctune as at

    def train(config):
        checkpoint = at.get_checkpoint()
        start = checkpoint["i"] if checkpoint else 0
        for i in range(start, 6):
            time.sleep(config["pause"])
            at.report(error=config["x"] + 0.05 / (i + 1),
                      latency=(1 - config["x"]) * (1 + config["lift"]) + 0.05 / (i + 1),
                      i=i + 1, checkpoint={"i": i + 1} if (i + 1) % 2 == 0 else None)

    def run(storage, name, pause):
        at.run(train, config={"x": at.uniform(0, 1), "lift": at.choice([0.0, 0.5]), "pause": pause},
                      num_samples=8, max_concurrent_trials=1, metric=["error", "latency"], mode=["min", "min"],
                      scheduler=at.MOASHAScheduler(max_t=6, grace_period=1, reduction_factor=2), seed=1,
                      storage_path=storage, name=name, verbose=0)

    if __name__ == "__main__":
        run(sys.argv[1], sys.argv[2], float(sys.argv[3]))
""")


def test_pareto_front_and_mo_asha_after_a_killed_driver_resumes(tmp_path):
    """A driver killed mid-run: resume() restores the metrics and MO-ASHA's rungs, and the front
    is that of the same experiment run without a break."""
    script = tmp_path / "resumable.py"
    script.write_text(RESUMABLE)
    storage = tmp_path / "results"
    driver = subprocess.Popen([sys.executable, str(script), str(storage), "killed", "0.05"])
    experiment_dir = storage / "killed"
    wait_for_results(experiment_dir, 12, timeout=60)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    assert count_results(experiment_dir) < 28, "the driver finished before it was killed"  # 4 trials run to 6, 4 stop at 1
    time.sleep(0.5)  # its workers notice and end

    resumed = at.resume(str(experiment_dir), verbose=0)
    subprocess.run([sys.executable, str(script), str(storage), "reference", "0"], check=True, timeout=120)
    reference = at.ExperimentAnalysis(str(storage / "reference"))
    assert resumed.default_metric == ["error", "latency"]

    def xs(trials):  # the configs but for the pause
        return [(t.config["x"], t.config["lift"]) for t in trials]

    assert xs(resumed.trials) == xs(reference.trials)
    # MO-ASHA's rungs were rebuilt from the first session's results: the same trials stopped
    assert [t.iteration for t in resumed.trials] == [t.iteration for t in reference.trials] == [6, 6, 6, 1, 1, 1, 6, 1]
    assert len(resumed.pareto_front()) == 6
    assert xs(resumed.pareto_front()) == xs(reference.pareto_front())
    assert xs(at.ExperimentAnalysis(str(experiment_dir)).pareto_front()) == xs(reference.pareto_front())


def test_the_front_is_by_last_results_not_best_ever(storage):
    """A trial whose first result was best in both metrics but whose last is dominated is not on
    the front: its best values came from a model it no longer is."""
    def train(config):
        for error, latency in config["curve"]:
            at.report(error=error, latency=latency)

    curves = [[[0.1, 0.1], [0.9, 0.9]], [[0.5, 0.5], [0.5, 0.5]]]
    analysis = at.run(train, config={"curve": at.grid_search(curves)}, metric=["error", "latency"], mode="min",
                      storage_path=storage, verbose=0)
    assert [t.config["curve"] for t in analysis.pareto_front()] == [curves[1]]


def test_tensorboard_lists_every_objective_first(storage):
    pytest.importorskip("tensorboardX")
    from tests.helpers.tensorboard_events import plugin_data, run_events

    analysis = at.run(two_objectives, config={"x": at.grid_search([0.2, 0.8])}, metric=["latency", "error"],
                      mode="min", storage_path=storage, verbose=0, tensorboard=True)
    (data,) = plugin_data(run_events(analysis.experiment_dir), "_hparams_/experiment")
    assert [m.name.tag for m in data.experiment.metric_infos][:2] == ["latency", "error"]
