"""Experiment names: the example runs twice, and a run that failed at start-up blocks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import asynctune as at
from asynctune.cli import main
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


def quick(config):
    at.report(score=1.0)


def ls(root: str, capsys) -> dict[str, dict]:
    assert main(["ls", root, "--json"]) == 0
    return {row["experiment"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}


def test_the_example_runs_twice_and_resumes_the_newest(tmp_path):
    def example(*argv: str) -> str:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "tune_digits.py"), "--samples", "2",
                               "--epochs", "3", "--storage", str(tmp_path), *argv],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert f"results: {tmp_path / 'digits_mlp'}\n" in example()
    assert f"results: {tmp_path / 'digits_mlp_2'}\n" in example()
    assert f"{tmp_path / 'digits_mlp_2'} already finished; there is nothing to resume" in example("--resume")
    assert f"results: {tmp_path / 'mine'}\n" in example("--name", "mine")


def test_a_run_that_failed_at_start_up_leaves_its_name_free(tmp_path, capsys):
    # The driver dies as the experiment starts (killed), before it saved any state. (This test
    # used tensorboard=True without tensorboardX, which run() now refuses before the directory
    # exists: issue 30.)
    script = tmp_path / "killed_at_start.py"
    script.write_text(textwrap.dedent(f"""\
        import os, signal
        import asynctune as at
        from tests.e2e.test_names import quick

        class KilledAtStart(at.Callback):
            def on_experiment_start(self, experiment_dir, trials):
                os.kill(os.getpid(), signal.SIGKILL)

        at.run(quick, storage_path={str(tmp_path / "r")!r}, name="exp", verbose=0, callbacks=[KilledAtStart()])
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == -signal.SIGKILL, done.stderr
    root = str(tmp_path / "r")
    row = ls(root, capsys)["exp"]
    assert (row["status"], row["trials"], row["path"]) == ("FAILED AT START", 0, os.path.join(root, "exp"))
    assert main(["ls", root]) == 0
    assert "FAILED AT START" in capsys.readouterr().out

    # The same name runs, with resume=True too (nothing to resume: it starts with the new arguments).
    analysis = at.run(quick, storage_path=root, name="exp", resume=True, tensorboard=False, verbose=0)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED]
    assert ls(root, capsys)["exp"]["status"] == "FINISHED"
    # Now it holds a trial: the name is taken.
    with pytest.raises(ValueError, match=r"already holds an experiment; pass resume=True to continue it \(1 trial\)"):
        at.run(quick, storage_path=root, name="exp", verbose=0)


def test_a_run_without_resume_reuses_a_directory_with_no_trial(storage):
    os.makedirs(os.path.join(storage, "exp"))
    with open(os.path.join(storage, "exp", "run_spec.pkl"), "wb") as f:
        f.write(b"left by a driver that died before its first trial")
    analysis = at.run(quick, num_samples=2, storage_path=storage, name="exp", verbose=0)
    assert len(analysis.trials) == 2
    assert at.ExperimentAnalysis(os.path.join(storage, "exp")).status == "FINISHED"
