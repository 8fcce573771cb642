"""A directory deleted under a running experiment (issue 27, case 9): noticed at the next write, the
experiment ends with an error naming what disappeared, and a trial whose results are gone is never
the best. Real worker processes; the directories are deleted for real while the run goes on."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

import asynctune as at
from asynctune import Callback


def train(config):
    for i in range(30):
        time.sleep(0.02)
        at.report(loss=config["x"] + 1.0 / (i + 1), checkpoint={"i": i + 1} if i % 5 == 4 else None)


class DeleteAfter(Callback):
    """Deletes a directory once `trial_id` has reported `results` results."""

    def __init__(self, trial_id: str, results: int, target: str) -> None:
        self.trial_id, self.results, self.target = trial_id, results, target
        self.done = False

    def on_trial_result(self, trial, result) -> None:
        if not self.done and trial.trial_id == self.trial_id and result["training_iteration"] >= self.results:
            shutil.rmtree(self.target if self.target != "trial" else trial.path)
            self.done = True


def _run(storage, callback):
    return at.run(train, config={"x": at.grid_search([0.0, 1.0, 2.0])}, metric="loss", mode="min",
                  storage_path=storage, name="exp", verbose=0, max_concurrent_trials=3, callbacks=[callback])


def test_trial_directory_deleted_mid_run_ends_the_run_and_is_never_best(storage, caplog):
    deleting = DeleteAfter("trial_00000", 3, "trial")
    with pytest.raises(at.AsynctuneError, match=r"trial_00000(/result.jsonl)? was deleted while the experiment ran") as caught:
        _run(storage, deleting)
    assert deleting.done and isinstance(caught.value, OSError)
    experiment = os.path.join(storage, "exp")
    with open(os.path.join(experiment, "experiment.json")) as f:
        state = json.load(f)
    assert state["status"] == "ERROR"
    statuses = {t["trial_id"]: t["status"] for t in state["trials"]}
    assert statuses["trial_00000"] == "ERROR"
    analysis = at.ExperimentAnalysis(experiment)
    best = analysis.best_trial
    assert best is None or best.trial_id != "trial_00000"  # its results are gone: it is no result
    assert "Traceback" not in caplog.text


def test_experiment_directory_deleted_mid_run_ends_with_one_clear_error(storage, capfd, caplog):
    experiment = os.path.join(storage, "exp")
    deleting = DeleteAfter("trial_00001", 3, experiment)
    with pytest.raises(at.AsynctuneError, match=rf"the directory {experiment} was deleted while the experiment ran") as caught:
        _run(storage, deleting)
    assert deleting.done
    assert "best" not in str(caught.value)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Traceback" not in caplog.text, err + caplog.text
    assert not os.path.exists(os.path.join(experiment, "trial_00000", "result.jsonl"))  # nothing made again
