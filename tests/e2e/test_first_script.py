"""What a new user meets first: the README's searcher + scheduler example runs as written, the
console tells early-stopped trials from finished ones, and `verbose` says what it accepts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import pytest

import asynctune as at
from asynctune.cli import main
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT


def readme_block(containing: str) -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_the_readme_example_with_a_searcher_and_a_scheduler_runs_as_written(tmp_path):
    code = readme_block("search_alg=at.TPESearch")
    assert "scheduler=at.ASHAScheduler(" in code
    for argument in ("max_t=", "grace_period=", "reduction_factor="):
        assert argument in code
    script = tmp_path / "first.py"
    script.write_text(code)
    env = {**os.environ, "HOME": str(tmp_path)}  # run() writes to ~/asynctune_results
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Trials: 20/20 \(\d+ EARLY_STOPPED, \d+ FINISHED\)", done.stdout), done.stdout
    (experiment,) = os.listdir(tmp_path / "asynctune_results")
    state = json.loads((tmp_path / "asynctune_results" / experiment / "experiment.json").read_text())
    assert state["searcher"] == "TPESearch" and state["scheduler"] == "ASHAScheduler"


def staircase(config):
    """Trials better by `level` all along: ASHA (max_t=9, rungs 1 and 3) stops the worse ones early."""
    for step in range(1, 10):
        at.report(loss=config["level"] + 1 / step)


def test_early_stopped_and_finished_trials_are_told_apart(storage, capsys):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        analysis = at.run(staircase, config={"level": at.grid_search(list(range(9)))}, metric="loss", mode="min",
                          scheduler=at.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3),
                          max_concurrent_trials=1, storage_path=storage, name="asha", verbose=3)
    finished = {t.trial_id for t in analysis.trials if t.iteration == 9}
    early = {t.trial_id for t in analysis.trials if t.iteration < 9}
    assert finished and early
    console = out.getvalue()
    assert f"Trials: 9/9 ({len(early)} EARLY_STOPPED, {len(finished)} FINISHED)" in console
    assert f"| {len(early)} early-stopped" in console  # reaching max_t is no decision
    for trial in analysis.trials:
        status = "FINISHED" if trial.trial_id in finished else "EARLY_STOPPED"
        assert re.search(rf"\|{trial.trial_id} \| {status} ", console), trial.trial_id
        # verbose=3: a line as each trial ends
        assert f"{trial.trial_id} {status} at iteration {trial.iteration}, loss=" in console
    # decisions.jsonl: every STOP says whether it was early (ASHA also says STOP at max_t)
    stops = {d["trial_id"]: d["early"] for d in analysis.decisions() if d["decision"] == "STOP"}
    assert stops == {**{t: True for t in early}, **{t: False for t in finished}}
    # `asynctune show` uses the same words
    assert main(["show", analysis.experiment_dir, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {t["trial_id"]: t["status"] for t in shown["trials"]} == {
        **{t: "EARLY_STOPPED" for t in early}, **{t: "FINISHED" for t in finished}}
    assert main(["show", analysis.experiment_dir, "-n", "9"]) == 0
    table = capsys.readouterr().out
    # FINISHED once more: the experiment's own status on the first line
    assert table.count("EARLY_STOPPED") == len(early) and table.count("FINISHED") == len(finished) + 1


def test_verbose_says_which_values_it_takes(storage):
    with pytest.raises(ValueError, match=r"run: verbose must be 0, 1, 2 or 3, got verbose=4"):
        at.run(staircase, storage_path=storage, verbose=4)
