"""One meaning of "best" everywhere: a trial's best-ever result, in the analysis, the live console,
`asynctune show` and `ls`, with the checkpoint saved with that result; scope="last" asks for the other."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest

import asynctune as at
from asynctune.cli import main

# Trial 0 overfits: its best result (0.5 at iteration 2) beats every other, its last (4.0) is the worst.
# Trial 1 improves to the end: the best last result (1.0).
CURVES = [[3.0, 0.5, 4.0], [2.0, 1.5, 1.0]]


def curve(config):
    for step, loss in enumerate(CURVES[config["curve"]], start=1):
        at.report(loss=loss, checkpoint={"step": step, "loss": loss})


@pytest.fixture(scope="module")
def run_and_console(tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("best") / "results")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        analysis = at.run(curve, config={"curve": at.grid_search([0, 1])}, metric="loss", mode="min",
                          storage_path=storage, name="overfit", verbose=1)
    return analysis, out.getvalue()


def test_best_is_the_best_ever_result_with_its_own_checkpoint(run_and_console):
    analysis, _ = run_and_console
    assert analysis.best_trial.trial_id == "trial_00000"
    assert analysis.best_config == {"curve": 0}
    assert (analysis.best_result["loss"], analysis.best_result["training_iteration"]) == (0.5, 2)
    assert analysis.best_checkpoint.endswith(os.path.join("trial_00000", "checkpoint_000002"))
    assert analysis.load_best_checkpoint() == {"step": 2, "loss": 0.5}
    # The same answer read back from the directory later.
    later = at.ExperimentAnalysis(analysis.experiment_dir)
    assert (later.best_result, later.best_checkpoint) == (analysis.best_result, analysis.best_checkpoint)


def test_scope_last_asks_for_the_last_result(run_and_console):
    analysis, _ = run_and_console
    assert analysis.get_best_trial(scope="last").trial_id == "trial_00001"
    assert analysis.get_best_result(scope="last")["loss"] == 1.0
    assert analysis.get_best_checkpoint(scope="last").endswith(os.path.join("trial_00001", "checkpoint_000003"))


def test_the_console_header_names_the_same_best_and_says_which(run_and_console):
    _, console = run_and_console
    assert "best-ever loss=0.5 (trial_00000)" in console


def test_show_and_ls_name_the_same_best_and_say_which(run_and_console, capsys):
    analysis, _ = run_and_console
    assert main(["show", analysis.experiment_dir]) == 0
    out = capsys.readouterr().out
    assert "trials by best-ever loss (min, scope=all)" in out
    assert f"best trial trial_00000: best-ever loss=0.5, checkpoint {analysis.best_checkpoint}" in out
    assert main(["show", analysis.experiment_dir, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["best_result"], shown["best_checkpoint"]) == (analysis.best_result, analysis.best_checkpoint)
    assert main(["ls", os.path.dirname(analysis.experiment_dir), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["best"], row["best_trial_id"], row["scope"]) == (0.5, "trial_00000", "all")


def test_a_checkpoint_not_saved_with_the_best_result_is_the_best_one_on_disk(storage):
    def sparse(config):
        for step, loss in enumerate([3.0, 0.5, 4.0, 2.0], start=1):
            at.report(loss=loss, checkpoint={"step": step} if step % 2 else None)  # steps 1 and 3 only

    analysis = at.run(sparse, metric="loss", mode="min", storage_path=storage, verbose=0)
    assert analysis.best_result["training_iteration"] == 2
    assert analysis.load_best_checkpoint() == {"step": 1}  # loss 3.0 beats the checkpoint at 4.0
