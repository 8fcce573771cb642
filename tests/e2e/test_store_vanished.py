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
    with pytest.raises(at.AsynctuneError, match=rf"the directory {experiment} was deleted or moved while the experiment ran") as caught:
        _run(storage, deleting)
    assert deleting.done
    assert "best" not in str(caught.value)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Traceback" not in caplog.text, err + caplog.text
    assert not os.path.exists(os.path.join(experiment, "trial_00000", "result.jsonl"))  # nothing made again


def resumable(config):
    start = (at.get_checkpoint() or {"i": 0})["i"]
    for i in range(start, 30):
        time.sleep(0.02)
        at.report(loss=config["x"] + 1.0 / (i + 1), checkpoint={"i": i + 1} if i % 5 == 4 else None)


class MoveAfter(Callback):
    """Moves the experiment's directory to `target` once trial_00000 has reported 3 results;
    with `then_made_again`, makes a directory where it was, holding those files (another run's)."""

    def __init__(self, target: str, then_made_again: dict[str, str] | None = None) -> None:
        self.target, self.done, self.then_made_again = target, False, then_made_again

    def on_trial_result(self, trial, result) -> None:
        if not self.done and trial.trial_id == "trial_00000" and result["training_iteration"] >= 3:
            where = os.path.dirname(trial.path)
            shutil.move(where, self.target)
            if self.then_made_again is not None:
                os.mkdir(where)
                for name, text in self.then_made_again.items():
                    with open(os.path.join(where, name), "w") as f:
                        f.write(text)
            self.done = True


class MoveWhenOneEnds(Callback):
    """Moves the experiment's directory to `target` as trial_00000 completes: the controller starts
    the next trial at once, before its tick can notice the move."""

    def __init__(self, target: str) -> None:
        self.target, self.done = target, False

    def on_trial_complete(self, trial) -> None:
        if not self.done:
            shutil.move(os.path.dirname(trial.path), self.target)
            self.done = True


@pytest.mark.parametrize("when", ["after 3 results", "as a trial completes"])
def test_an_experiment_moved_mid_run_resumes_where_it_is_now(storage, tmp_path, when):
    """`mv` of a running experiment ends the run like a deletion, but what the driver writes
    until it notices leaves the moved directory resumable: no trial counted as failed for the
    files it could not write, none marked as having lost its results, no trial started where
    the directory was (which would make it again there: its worker made the trial's directory
    and all above it, as a trial started just after a trial completed did)."""
    experiment, moved = os.path.join(storage, "exp"), str(tmp_path / "elsewhere")
    mover = MoveAfter(moved) if when == "after 3 results" else MoveWhenOneEnds(moved)
    with pytest.raises(at.DirectoryVanished, match=rf"{experiment} was deleted or moved while the experiment ran"):
        at.run(resumable, config={"x": at.grid_search([0.0, 1.0, 2.0, 3.0, 4.0])}, metric="loss", mode="min",
               storage_path=storage, name="exp", verbose=0, max_concurrent_trials=2, callbacks=[mover])
    assert mover.done
    assert not os.path.exists(experiment)  # nothing made again where it was
    resumed = at.resume(moved, verbose=0, callbacks=[])
    assert [t.status for t in resumed.trials] == [at.Status.FINISHED] * 5, [t.error for t in resumed.trials]
    for trial in resumed.trials:
        assert [r["training_iteration"] for r in resumed.trial_results(trial.trial_id)] == list(range(1, 31))


def test_a_directory_made_again_where_the_experiment_was_is_never_written_over(storage, tmp_path):
    """Another run may take the name once the experiment is moved away: the moved run's driver
    saves nothing there (its snapshot, its searcher's state)."""
    experiment, moved = os.path.join(storage, "exp"), str(tmp_path / "elsewhere")
    theirs = {"experiment.json": "another run's", "searcher_state.pkl": "another run's"}
    mover = MoveAfter(moved, then_made_again=theirs)
    with pytest.raises(at.DirectoryVanished):
        at.run(resumable, config={"x": at.uniform(0, 4)}, num_samples=5, metric="loss", mode="min",
               search_alg=at.TPESearch(n_startup_trials=1), storage_path=storage, name="exp", verbose=0,
               max_concurrent_trials=2, callbacks=[mover])
    assert mover.done
    for name, text in theirs.items():
        with open(os.path.join(experiment, name)) as f:
            assert f.read() == text, name
    resumed = at.resume(moved, verbose=0, callbacks=[])
    assert [t.status for t in resumed.trials] == [at.Status.FINISHED] * 5, [t.error for t in resumed.trials]



def reports_once(config):
    at.report(x=1)


def test_a_local_worker_never_makes_a_moved_experiment_again(tmp_path):
    """The move may come after the driver's last look, while the trial's request is on its way:
    the local executor's worker (its request says the experiment's directory is the driver's) makes
    only the trial's directory, so the trial fails to start and nothing is made where the
    experiment was. A worker on an SSH host still makes the directories above the trial's."""
    from tests.helpers.worker_process import WorkerProcess

    experiment = tmp_path / "exp"
    worker = WorkerProcess()
    try:
        worker.run(experiment / "trial_00000", reports_once, {}, in_driver_dir=True)
        kind, error, *_ = worker.channel.receive()
        assert (kind, error.split(":")[0]) == ("error", "FileNotFoundError")
        assert not experiment.exists()
        worker.run(tmp_path / "remote" / "trial_00000", reports_once, {})  # SSH's request: a new host
        assert worker.channel.receive()[0] == "result"
        worker.answer()
        assert worker.channel.receive()[:2] == ("done", "finished")
    finally:
        assert worker.close() == 0
