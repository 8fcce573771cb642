"""The first hour: errors come early, alone, and point at the user's code (issue 16, items 1-3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback

import psutil
import pytest

import asynctune as at


def quadratic(config):
    for step in range(3):
        at.report(loss=(config["x"] - 3) ** 2 + 1 / (step + 1))


def always_fails(config):
    raise ZeroDivisionError(f"bad x={config['x']}")


def reports_then_fails(config):
    at.report(loss=-100.0)  # the best value of the experiment, from a trial that then fails
    raise RuntimeError("diverged")


# 1. An error out of run() is alone: no asyncio context chained before it.

def test_a_bad_argument_is_not_chained_behind_an_event_loop_error(storage):
    with pytest.raises(ValueError, match="num_samples") as info:
        at.run(quadratic, num_samples=0, storage_path=storage, verbose=0)
    text = "".join(traceback.format_exception(info.value))
    assert "no running event loop" not in text
    assert "During handling of the above exception" not in text


def test_an_error_raised_inside_the_experiment_is_not_chained_either(storage):
    with pytest.raises(at.TrialFailed) as info:
        at.run(always_fails, config={"x": 1}, fail_fast=True, storage_path=storage, verbose=0)
    text = "".join(traceback.format_exception(info.value))
    assert "no running event loop" not in text
    assert "ZeroDivisionError: bad x=1" in text


@pytest.mark.parametrize("returned", [{"cpu": 10_000}, {"cpu": -1}], ids=["never-fits", "invalid"])
def test_resources_per_trial_as_a_function_that_cannot_run_is_one_value_error(storage, returned):
    """A function's request is known only when the trial is made: it ends the experiment with the
    same plain ValueError run() raises for a fixed request, not inside an ExceptionGroup."""
    with pytest.raises(ValueError, match="can never fit on any host|resources_per_trial callable") as info:
        at.run(quadratic, config={"x": 1}, resources_per_trial=lambda config: returned, storage_path=storage,
               verbose=0)
    assert not isinstance(info.value, BaseExceptionGroup)
    assert at.ExperimentAnalysis(_only_experiment(storage)).status == "ERROR"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", [None, "exp"], ids=["default-name", "named"])
def test_a_storage_path_that_is_a_file_is_named_at_once(tmp_path, name):
    """Without name=, finding a free default name looped for ever (100% CPU) on the FileExistsError
    that making the storage directory raises where a file is."""
    a_file = tmp_path / "results"
    a_file.write_text("not a directory")
    with pytest.raises(ValueError, match=r"storage_path '.*results' is a file, not a directory"):
        at.run(quadratic, config={"x": 1}, storage_path=str(a_file), name=name, verbose=0)


class _FailsOnItsSecondSuggestion(at.Searcher):
    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def suggest(self, trial_id):
        self.asked += 1
        if self.asked == 2:
            raise RuntimeError("a bug in the searcher")
        return {"x": 1}


def test_an_error_in_the_search_comes_out_of_run_as_itself(storage):
    """A searcher's bug, or a sample_from that raises for one sampled value only, is raised by
    run() as that error, not wrapped in the controller's TaskGroup's ExceptionGroup."""
    with pytest.raises(RuntimeError, match="a bug in the searcher") as info:
        at.run(quadratic, search_alg=_FailsOnItsSecondSuggestion(), num_samples=3, storage_path=storage, verbose=0)
    assert not isinstance(info.value, BaseExceptionGroup)
    space = {"d": at.grid_search([1, 0]), "x": at.sample_from(lambda config: 1 / config["d"])}
    with pytest.raises(at.SearchSpaceError, match=r"config\['x'\]: sample_from function raised ZeroDivisionError"):
        at.run(quadratic, config=space, storage_path=storage, verbose=0)


def _only_experiment(storage) -> str:
    [name] = os.listdir(storage)
    return os.path.join(storage, name)


SCRIPT = """
import time, asynctune as at
def train(config):
    while True:
        time.sleep(0.05)
        at.report(x=1)
if __name__ == '__main__':
{main}
"""
RUN = "at.run(train, num_samples=2, storage_path={root!r}, name='exp', verbose=1)"


def _interrupt(tmp_path, main: str) -> subprocess.Popen:
    """Start the script, wait until both trials run, press Ctrl-C."""
    script = tmp_path / "experiment.py"
    script.write_text(SCRIPT.format(main=main.format(run=RUN.format(root=str(tmp_path / "r")))))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and len(psutil.Process(proc.pid).children(recursive=True)) < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    return proc


def test_ctrl_c_prints_the_resume_hint_and_no_traceback(tmp_path):
    proc = _interrupt(tmp_path, '    {run}\n    print("NOT REACHED")')
    out, err = proc.communicate(timeout=30)
    assert proc.returncode in (-signal.SIGINT, 130), (proc.returncode, err)  # as Python's own Ctrl-C
    assert f"asynctune resume {tmp_path / 'r' / 'exp'}" in err
    assert "Traceback" not in err, err
    assert "NOT REACHED" not in out


def test_ctrl_c_is_still_a_keyboard_interrupt_the_program_can_catch(tmp_path):
    proc = _interrupt(tmp_path, '    try:\n        {run}\n    except KeyboardInterrupt:\n        print("CAUGHT")')
    out, err = proc.communicate(timeout=30)
    assert "CAUGHT" in out and proc.returncode == 0, (out, err)


# 2. A metric that no trial reports is found on the first result, not after the whole run.

def test_a_metric_missing_from_the_first_result_ends_the_experiment_early(storage):
    def slow(config):
        for step in range(200):
            time.sleep(0.01)
            at.report(loss=1.0 / (step + 1), accuracy_typo=step)

    started = time.time()
    with pytest.raises(ValueError) as info:
        at.run(slow, num_samples=4, metric="accuracy", mode="max", storage_path=storage, verbose=0,
               scheduler=at.ASHAScheduler(max_t=200, grace_period=1))
    assert time.time() - started < 15  # not 4 x 200 steps
    message = str(info.value)
    assert "metric='accuracy'" in message and "trial_0000" in message
    assert "accuracy_typo" in message and "loss" in message  # the keys that were reported
    # what was reported is kept
    analysis = at.ExperimentAnalysis(next(iter(__import__("glob").glob(f"{storage}/*"))))
    assert any(analysis.trial_results(t.trial_id) for t in analysis.trials)


def test_a_metric_reported_only_on_some_results_is_fine(storage):
    def every_other(config):
        for step in range(4):
            at.report(step=step, **({"loss": float(step)} if step % 2 == 0 else {}))

    analysis = at.run(every_other, num_samples=2, metric="loss", mode="min", storage_path=storage, verbose=0)
    assert all(t.status is at.Status.TERMINATED for t in analysis.trials)


def test_a_metric_first_measured_later_is_reported_as_none_until_then(storage):
    """Validation every third epoch: the error at the first result says what to do, and doing it
    (None at the other epochs) runs, ranking by the epochs that measured it."""
    def validates_every_third(config, none_between=False):
        for epoch in range(1, 7):
            measured = epoch / 10 if epoch % 3 == 0 else None
            at.report(loss=1 / epoch, **({"val_acc": measured} if measured is not None or none_between else {}))

    with pytest.raises(ValueError, match=r"metric='val_acc' is not in .*report it as None at the others"):
        at.run(validates_every_third, metric="val_acc", mode="max", storage_path=storage, verbose=0)
    analysis = at.run(lambda config: validates_every_third(config, none_between=True), metric="val_acc", mode="max",
                      storage_path=storage, verbose=0)
    assert analysis.best_result["val_acc"] == 0.6 and analysis.best_result["training_iteration"] == 6


# 3. When every trial fails, run() says so instead of returning an empty analysis.

def test_every_trial_failing_raises_with_the_first_error_and_where_to_look(storage):
    with pytest.raises(at.TrialsFailed) as info:
        at.run(always_fails, config={"x": at.grid_search([1, 2, 3])}, metric="loss", mode="min",
               storage_path=storage, verbose=0)
    error = info.value
    message = str(error)
    assert "all 3 trials failed" in message
    assert "ZeroDivisionError: bad x=1" in message
    assert "error.txt" in message
    assert len(error.failed) == 3
    assert error.analysis.trials and error.analysis.best_config is None


def test_the_all_failed_error_can_be_turned_off(storage):
    analysis = at.run(always_fails, config={"x": at.grid_search([1, 2])}, storage_path=storage, verbose=0,
                      raise_on_failed_trial=False)
    assert [t.status for t in analysis.trials] == [at.Status.ERROR, at.Status.ERROR]


def test_any_failure_can_be_made_an_error(storage):
    def fails_on_two(config):
        at.report(loss=float(config["x"]))
        if config["x"] == 2:
            raise RuntimeError("two")

    with pytest.raises(at.TrialsFailed, match="1 of 2 trials failed"):
        at.run(fails_on_two, config={"x": at.grid_search([1, 2])}, metric="loss", mode="min",
               storage_path=storage, verbose=0, raise_on_failed_trial="any")


def test_a_trial_that_failed_is_not_the_best_unless_asked(storage, capsys):
    import io

    from asynctune.cli import main
    from asynctune.reporting.console import ConsoleReporter

    def mixed(config):
        if config["x"] == 0:
            reports_then_fails(config)
        quadratic(config)

    analysis = at.run(mixed, config={"x": at.grid_search([0, 3])}, metric="loss", mode="min",
                      storage_path=storage, verbose=0)
    assert analysis.best_config == {"x": 3}
    failed = next(t for t in analysis.trials if t.status is at.Status.ERROR)
    assert analysis.get_best_trial("loss", "min", include_failed=True) is failed
    reloaded = at.ExperimentAnalysis(analysis.experiment_dir)
    assert reloaded.best_config == {"x": 3}
    # one rule everywhere: `asynctune show` and the console header agree
    good = next(t for t in analysis.trials if t.status is at.Status.TERMINATED)
    assert main(["show", analysis.experiment_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best_trial_id"] == good.trial_id
    console = ConsoleReporter(metric="loss", mode="min", file=io.StringIO())
    console.on_experiment_start(analysis.experiment_dir, [])
    assert f"({good.trial_id})" in console.summary(analysis.trials)


def test_invalid_raise_on_failed_trial_is_named(storage):
    with pytest.raises(ValueError, match="raise_on_failed_trial"):
        at.run(quadratic, config={"x": 1}, storage_path=storage, verbose=0, raise_on_failed_trial="some")


def test_experiment_json_records_the_failure_status(storage):
    with pytest.raises(at.TrialsFailed) as info:
        at.run(always_fails, config={"x": 1}, storage_path=storage, verbose=0)
    with open(f"{info.value.analysis.experiment_dir}/experiment.json") as f:
        assert json.load(f)["trials"][0]["status"] == "ERROR"


def test_a_schedulers_own_metric_is_checked_too(storage):
    with pytest.raises(ValueError, match=r"metric='acc' \(of ASHAScheduler\) is not in trial_0000\d's first result"):
        at.run(quadratic, config={"x": at.grid_search([1, 2])}, storage_path=storage, verbose=0,
               scheduler=at.ASHAScheduler(metric="acc", mode="max", max_t=3, grace_period=1))


def test_a_retried_trial_that_fails_before_reporting_again_keeps_what_it_reported(storage):
    def fails_twice(config):
        if at.get_checkpoint() is None and os.path.exists(os.path.join(at.get_trial_dir(), "error.txt")):
            raise RuntimeError("fails at once on the retry")
        for step in range(3):
            at.report(loss=float(step))
        raise RuntimeError("first attempt")

    analysis = at.run(fails_twice, config={"x": 1}, metric="loss", mode="min", max_failures=1,
                      storage_path=storage, verbose=0, raise_on_failed_trial=False)
    trial = analysis.trials[0]
    assert trial.status is at.Status.ERROR and trial.num_failures == 2
    assert [r["loss"] for r in analysis.trial_results(trial.trial_id)] == [0.0, 1.0, 2.0]


RESUME_SCRIPT = """
import os, sys, time
import asynctune as at

def train(config):
    changed = open(config["changed"]).read() if os.path.exists(config["changed"]) else ""
    if changed == "fail":
        raise RuntimeError("poisoned")
    for step in range(50):
        time.sleep(0.05)
        late = changed == "late" and step < 2  # the second session reports the metric only later
        at.report(step=step, **({} if late else {"loss": float(config["x"] + step)}))

if __name__ == "__main__":
    at.run(train, config={"x": at.grid_search([1, 2]), "changed": sys.argv[2]}, metric="loss", mode="min",
           storage_path=sys.argv[1], name="twice", verbose=0, stop={"training_iteration": 5})
"""


def _killed_after_the_first_results(tmp_path, change: str):
    """Run RESUME_SCRIPT, kill its driver once a trial reported twice; the trainable then changes."""
    script = tmp_path / "twice.py"
    script.write_text(RESUME_SCRIPT)
    changed = tmp_path / "changed"
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path / "r"), str(changed)])
    experiment_dir = tmp_path / "r" / "twice"
    deadline = time.time() + 30
    while time.time() < deadline and not any(
            len(f.read_text().splitlines()) >= 2 for f in experiment_dir.glob("trial_*/result.jsonl")):
        time.sleep(0.05)
    driver.kill()
    driver.wait(timeout=10)
    changed.write_text(change)
    return experiment_dir


def test_results_of_an_earlier_session_count_for_the_first_result_check(tmp_path):
    experiment_dir = _killed_after_the_first_results(tmp_path, "late")
    resumed = at.resume(str(experiment_dir), verbose=0)  # the loss was reported in the first session
    assert all(t.status is at.Status.TERMINATED for t in resumed.trials)
    assert resumed.best_config is not None


def test_when_every_trial_fails_after_a_resume_the_first_sessions_results_still_count(tmp_path):
    experiment_dir = _killed_after_the_first_results(tmp_path, "fail")  # issue 15, item 6
    with pytest.raises(at.TrialsFailed) as info:  # every trial failed in this session: that is the news
        at.resume(str(experiment_dir), verbose=0)
    assert "never reported" not in str(info.value) and "not in" not in str(info.value)
    assert any(len(info.value.analysis.trial_results(t.trial_id)) >= 2 for t in info.value.analysis.trials)


def test_the_resume_command_says_in_one_line_that_every_trial_failed(tmp_path, capsys):
    from asynctune.cli import main

    experiment_dir = _killed_after_the_first_results(tmp_path, "fail")
    assert main(["resume", str(experiment_dir), "--verbose", "0"]) == 1
    err = capsys.readouterr().err
    assert "trials failed; the first: trial_0000" in err and "RuntimeError: poisoned" in err
    assert "Traceback" not in err
