"""The `asynctune` command on a real experiment directory: ls, show, plot, resume, hosts check."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import types

import pytest

import asynctune as at
from asynctune import CONTINUE, PAUSE, STOP, Scheduler
from asynctune.cli import main
from tests.helpers.trainables import counting
from tests.helpers.paths import REPO_ROOT

REPO = REPO_ROOT


class StopAndPause(Scheduler):
    """Stops x=0 at iteration 2 and pauses x=5 once at iteration 3, so plots have marks."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def on_trial_result(self, trial, result):
        if trial.config["x"] == 0 and result["training_iteration"] == 2:
            return STOP
        if trial.config["x"] == 5 and result["training_iteration"] == 3 and not self.paused:
            self.paused = True
            return PAUSE
        return CONTINUE


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Two finished experiments under one root, made by real runs."""
    root = str(tmp_path_factory.mktemp("results"))
    at.run(counting, config={"x": at.grid_search([0, 2, 3, 5]), "width": 8}, metric="loss", mode="min",
           scheduler=StopAndPause(), storage_path=root, name="quad", verbose=0)
    at.run(counting, config={"x": at.grid_search([1, 4])}, metric="loss", mode="min", storage_path=root,
           name="second", verbose=0, tensorboard=False)
    return root


@pytest.fixture
def experiment(root):
    return os.path.join(root, "quad")


def cli(*argv: str) -> subprocess.CompletedProcess:
    """The command as users run it, in a fresh interpreter."""
    # The repository root: resume unpickles the trainable, tests.helpers.trainables.counting.
    path = os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "asynctune.cli", *argv], capture_output=True, text=True,
                          timeout=120, env=env)


def test_ls_lists_experiments_with_status_trials_and_best(root):
    done = cli("ls", root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    quad = next(line for line in lines if " quad " in f" {line} ")
    assert "FINISHED" in quad and "4 (1 early_stopped, 3 finished)" in quad and "loss (min)" in quad
    assert re.search(r"\b0\.166667\s+trial_00002\b", quad)  # x=3 ends at loss 1/6
    assert any(" second " in f" {line} " for line in lines)


def test_ls_json_gives_the_numbers(root, capsys):
    assert main(["ls", root, "--json"]) == 0
    rows = {row["experiment"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"quad", "second"}
    assert rows["quad"]["best"] == pytest.approx(1 / 6) and rows["quad"]["best_trial_id"] == "trial_00002"
    assert (rows["quad"]["trials"], rows["quad"]["FINISHED"], rows["quad"]["EARLY_STOPPED"]) == (4, 3, 1)
    assert rows["second"]["best"] == pytest.approx(1 + 1 / 6)


def test_ls_of_an_empty_root_says_so(tmp_path, capsys):
    assert main(["ls", str(tmp_path)]) == 0
    assert "no experiments" in capsys.readouterr().out


def test_show_prints_the_best_trials_and_the_best_config(experiment):
    done = cli("show", experiment, "--top", "2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "best 2 of 4 trials by best-ever loss (min, scope=all)" in out
    table = out[out.index("best 2 of 4"):out.index("best config:")]
    assert table.index("trial_00002") < table.index("trial_00001")  # x=3 first, then x=2
    assert "trial_00000" not in table and "width" not in table  # only the top 2; constants hidden
    config = json.loads(out[out.index("best config:") + len("best config:"):])
    assert config == {"x": 3, "width": 8}


def test_show_json_agrees_with_the_analysis(experiment, capsys):
    assert main(["show", experiment, "--json", "--scope", "all"]) == 0
    shown = json.loads(capsys.readouterr().out)
    analysis = at.ExperimentAnalysis(experiment)
    best = analysis.get_best_trial("loss", "min", "all")
    assert shown["best_trial_id"] == best.trial_id and shown["best_config"] == best.config
    assert [t["trial_id"] for t in shown["trials"]][:2] == ["trial_00002", "trial_00001"]
    assert shown["trials"][-1]["value"] == pytest.approx(9.5)  # x=0, stopped at iteration 2


def test_show_ranks_by_another_metric_and_mode(experiment, capsys):
    assert main(["show", experiment, "--json", "--metric", "training_iteration", "--mode", "min"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["best_trial_id"] == "trial_00000"  # the stopped trial has the fewest iterations


def test_plot_writes_non_empty_pngs(experiment, tmp_path):
    out = str(tmp_path / "plots")
    done = cli("plot", experiment, "--out", out, "--per-trial")
    assert done.returncode == 0, done.stderr
    expected = ["learning_curves.png", "best_so_far.png"] + [f"trials/trial_{i:05d}.png" for i in range(4)]
    for name in expected:
        path = os.path.join(out, name)
        with open(path, "rb") as f:
            data = f.read()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, name
    assert os.path.join(out, "learning_curves.png") in done.stdout


def test_plot_marks_the_decisions(experiment, tmp_path):
    """The learning-curve figure carries one mark per decision (read back from the plotted axes)."""
    pytest.importorskip("matplotlib")
    from asynctune.analysis import plot

    drawn = []
    original = plot._draw_marks

    def spy(axes, marks):
        drawn.extend(marks)
        original(axes, marks)

    plot._draw_marks = spy
    try:
        plot.plot_experiment(experiment, out_dir=str(tmp_path))
    finally:
        plot._draw_marks = original
    assert sorted((kind, x) for kind, x, _ in drawn) == [("PAUSE", 3.0), ("STOP", 2.0)]


def test_resume_of_a_finished_experiment_changes_nothing(experiment):
    before = at.ExperimentAnalysis(experiment).dataframe()
    done = cli("resume", experiment)
    assert done.returncode == 0, done.stderr
    assert "nothing to resume" in done.stdout + done.stderr
    after = at.ExperimentAnalysis(experiment).dataframe()
    assert list(after["loss"]) == list(before["loss"])


def test_resume_passes_its_options_to_the_api(experiment, monkeypatch, capsys):
    calls = []

    def fake_resume(experiment_dir, *, verbose=None, time_budget_s=None, executor=None, callbacks=None):
        calls.append((experiment_dir, verbose, time_budget_s))
        return at.ExperimentAnalysis(experiment_dir)

    monkeypatch.setattr("asynctune.api.resume", fake_resume)
    assert main(["resume", experiment, "--verbose", "0", "--time-budget-s", "30"]) == 0
    assert calls == [(experiment, 0, 30.0)]
    assert "best trial trial_00002" in capsys.readouterr().out


class FakeSSH(types.ModuleType):
    def __init__(self, reports):
        super().__init__("asynctune.executors.ssh.executor")
        self.calls = []
        self.reports = reports

    def check_hosts(self, hosts, known_hosts=None, timeout=None):
        self.calls.append((hosts, known_hosts, timeout))
        return [dict(report, host=host) for host, report in zip(hosts, self.reports)]


GOOD = {"reachable": True, "reason": "", "python": "3.11.7", "asynctune": "0.1.0", "cpus": 8, "gpus": 2,
        "latency_ms": 1.25}
BAD = {"reachable": False, "reason": "connection refused", "python": None, "asynctune": None, "cpus": None,
       "gpus": None, "latency_ms": None}


@pytest.mark.parametrize("reports, code", [([GOOD, GOOD], 0), ([GOOD, BAD], 1)], ids=["all-usable", "one-down"])
def test_hosts_check_prints_each_host_and_fails_if_one_is_down(monkeypatch, capsys, tmp_path, reports, code):
    fake = FakeSSH(reports)
    monkeypatch.setitem(sys.modules, "asynctune.executors.ssh.executor", fake)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    assert main(["hosts", "check", "alpha", "beta:2222", "--known-hosts", str(known_hosts), "--timeout", "3"]) == code
    assert fake.calls == [(["alpha", "beta:2222"], str(known_hosts), 3.0)]
    out = capsys.readouterr().out
    assert "alpha" in out and "3.11.7" in out and "1.25" in out
    assert ("connection refused" in out) == (code == 1)


def test_hosts_check_awaits_a_coroutine_check(monkeypatch, capsys):
    module = types.ModuleType("asynctune.executors.ssh.executor")

    async def check_hosts(hosts, known_hosts=None, timeout=None):
        return [dict(GOOD, host=h) for h in hosts]

    module.check_hosts = check_hosts
    monkeypatch.setitem(sys.modules, "asynctune.executors.ssh.executor", module)
    assert main(["hosts", "check", "alpha", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["host"] == "alpha"


def test_hosts_check_reports_an_unreachable_host_with_the_real_ssh_executor(tmp_path):
    pytest.importorskip("asyncssh")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    done = cli("hosts", "check", "127.0.0.1:1", "--known-hosts", str(known_hosts), "--timeout", "5", "--json")
    assert done.returncode == 1, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["reachable"] is False and row["reason"] and row["host"].startswith("127.0.0.1")


def test_hosts_may_follow_options_in_both_check_commands(tmp_path):
    # argparse takes one run of positionals: `check a --timeout 5 b` refused b before.
    pytest.importorskip("asyncssh")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    done = cli("hosts", "check", "127.0.0.1:1", "--timeout", "5", "127.0.0.1:2", "--known-hosts", str(known_hosts),
               "--json")
    assert done.returncode == 1, done.stderr
    assert [json.loads(line)["host"] for line in done.stdout.splitlines()] == ["127.0.0.1:1", "127.0.0.1:2"]
    done = subprocess.run([sys.executable, "-m", "asynctune.executors.ssh", "check", "127.0.0.1:1", "--timeout", "5",
                           "127.0.0.1:2", "--known-hosts", str(known_hosts), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert [row["host"] for row in json.loads(done.stdout)] == ["127.0.0.1:1", "127.0.0.1:2"]
    done = cli("hosts", "check", "127.0.0.1:1", "--bogus")  # an unknown option is still refused
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr


def test_hosts_check_without_the_ssh_executor_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "asynctune.executors.ssh.executor", None)  # import fails
    assert main(["hosts", "check", "alpha"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asynctune hosts: error: checking hosts needs the SSH executor") and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["show", "{missing}"], "no such directory"),
    (["plot", "{missing}"], "no such directory"),
    (["resume", "{missing}"], "no such directory"),
    (["ls", "{missing}"], "no such directory"),
    (["show", "{root}"], "not an asynctune experiment directory (no experiment.json); it holds experiments"),
    (["plot", "{experiment}", "--metric", "nope"], "reported 'nope'"),
    (["show", "{experiment}", "--metric", "los", "--mode", "min"], "reported it (did you mean 'loss'?)"),
    (["show", "{experiment}", "--metric", "los"], "reported it (did you mean 'loss'?)"),
    (["hosts", "check", "alpha", "--known-hosts", "{missing}"], "no such file"),
], ids=["show", "plot", "resume", "ls", "show-root", "plot-metric", "show-metric", "show-metric-no-mode",
        "known-hosts"])
def test_a_wrong_path_or_argument_is_one_line_and_exit_status_2(root, experiment, tmp_path, argv, message):
    argv = [a.format(missing=str(tmp_path / "missing"), root=root, experiment=experiment) for a in argv]
    done = cli(*argv)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_the_dashboard_stopped_by_ctrl_c_exits_0(root):
    """docs/cli.md: Ctrl-C is how the dashboard stops, so it is status 0, not the 130 of an interrupt."""
    pytest.importorskip("aiohttp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-m", "asynctune.cli", "dashboard", root, "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "(Ctrl-C to stop)" in server.stdout.readline()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0, server.stderr.read()
    finally:
        server.kill()


@pytest.mark.parametrize("argv", [["ls"], ["show"], ["plot"], ["resume"], ["hosts", "check"], []],
                         ids=["ls", "show", "plot", "resume", "hosts-check", "top"])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: asynctune") and "--help" in out


def test_a_bad_option_value_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "x", "--top", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err
