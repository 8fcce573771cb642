"""TrialRuntime: the checked transitions of one trial, and its results and checkpoints on disk
(real files in tmp_path: result.jsonl, progress.csv, params.json, error.txt, checkpoint dirs)."""

from __future__ import annotations

import json
import os

import pytest

import asynctune as at
from asynctune.controller.runtime import TrialRuntime, TrialStorageError
from asynctune.core.resources import Placement
from asynctune.core.trial import Mutate, Status, Trial
from asynctune.errors import StorageFull
from asynctune.executors.base import ResultEvent
from asynctune.reporting.callback import CallbackList
from asynctune.store.layout import read_results
from tests.helpers.disks import fill, small_tmpfs


class Checkpoints(at.Callback):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_checkpoint(self, trial, checkpoint):
        self.seen.append(checkpoint)


def make(tmp_path, *, keep: int | None = None, mode: str = "min", callbacks=()) -> tuple[TrialRuntime, list]:
    """A runtime of trial_00000 under tmp_path, and the list of (trial_id, status, event) it journals."""
    trial = Trial("trial_00000", {"lr": 0.1}, index=0, path=str(tmp_path / "trial_00000"))
    changes: list[tuple[str, str, str]] = []

    def changed(trial: Trial, event: str = "status") -> None:
        changes.append((trial.trial_id, trial.status.value, event))

    runtime = TrialRuntime(trial, metric="loss", mode=mode, keep_checkpoints_num=keep, changed=changed,
                           callbacks=CallbackList(list(callbacks)))
    return runtime, changes


def checkpoint_dir(trial_dir: str, iteration: int, time_total: float = 0.0) -> str:
    """A complete checkpoint as a worker leaves it: its data, then its metadata file last."""
    path = os.path.join(trial_dir, f"checkpoint_{iteration:06d}")
    os.makedirs(path)
    with open(os.path.join(path, "state.json"), "w") as f:
        json.dump({"iteration": iteration}, f)
    with open(os.path.join(path, ".asynctune.json"), "w") as f:
        json.dump({"iteration": iteration, "time_total_s": time_total}, f)
    return path


def result(iteration: int, loss: float) -> dict:
    return {"loss": loss, "training_iteration": iteration, "time_total_s": float(iteration)}


def event(values: dict, checkpoint: str | None = None) -> ResultEvent:
    return ResultEvent(values, checkpoint)


PLACE = Placement(host="localhost", cpu=1)


# Transitions ----------------------------------------------------------------------------------------

def test_a_trial_runs_then_finishes_and_each_change_is_journaled(tmp_path):
    runtime, changes = make(tmp_path)
    runtime.start(PLACE, now=5.0)
    trial = runtime.trial
    assert (trial.status, trial.placement, trial.start_time) == (Status.RUNNING, PLACE, 5.0)
    runtime.finish(now=9.0)
    assert (trial.status, trial.end_time) == (Status.TERMINATED, 9.0)
    runtime.ended()
    assert trial.placement is None and runtime.run is None
    assert changes == [("trial_00000", "RUNNING", "status"), ("trial_00000", "FINISHED", "status")]


@pytest.mark.parametrize("status, transition", [
    (Status.RUNNING, "start"), (Status.TERMINATED, "start"), (Status.PENDING, "paused"),
    (Status.PAUSED, "retry"), (Status.PENDING, "interrupted"), (Status.RUNNING, "resume"),
    (Status.TERMINATED, "finish"), (Status.ERROR, "fail"),
])
def test_a_transition_from_the_wrong_status_is_a_bug_and_changes_nothing(tmp_path, status, transition):
    runtime, changes = make(tmp_path)
    runtime.trial.status = status
    calls = {"start": lambda: runtime.start(PLACE, 0.0), "paused": runtime.paused, "retry": runtime.retry,
             "interrupted": runtime.interrupted, "resume": lambda: runtime.resume(None, None),
             "finish": lambda: runtime.finish(0.0), "fail": lambda: runtime.fail(0.0)}
    with pytest.raises(RuntimeError, match=f"trial_00000: cannot \\w+ from {status.value}"):
        calls[transition]()
    assert runtime.trial.status is status and changes == []


def test_a_resume_asked_for_while_the_pause_was_on_its_way_is_handed_back_once(tmp_path):
    runtime, _ = make(tmp_path)
    runtime.start(PLACE, 0.0)
    runtime.resume_request = ({"lr": 0.5}, None)
    assert runtime.paused() == ({"lr": 0.5}, None)
    assert runtime.trial.status is Status.PAUSED and runtime.resume_request is None
    runtime.resume({"lr": 0.5}, None)
    assert runtime.trial.status is Status.PENDING and runtime.trial.config == {"lr": 0.5}
    with open(os.path.join(runtime.trial.path, "params.json")) as f:
        assert json.load(f) == {"lr": 0.5}  # the new config is on disk before the trial runs with it


def test_the_end_of_an_attempt_forgets_its_requests_but_a_paused_trial_keeps_its_resume(tmp_path):
    runtime, _ = make(tmp_path)
    runtime.start(PLACE, 0.0)
    runtime.stop_requested = runtime.pause_requested = runtime.killing = True
    runtime.paused()
    runtime.resume_request = (None, None)  # the scheduler resumed it after the pause landed
    runtime.ended()
    assert not (runtime.stop_requested or runtime.pause_requested or runtime.killing)
    assert runtime.resume_request == (None, None)
    runtime.resume(None, None)
    runtime.start(PLACE, 1.0)
    runtime.resume_request = (None, None)
    runtime.finish(2.0)
    runtime.ended()
    assert runtime.resume_request is None


# Results and checkpoints ------------------------------------------------------------------------------

def test_a_result_is_on_disk_before_the_trial_counts_it(tmp_path):
    runtime, _ = make(tmp_path)
    runtime.start(PLACE, 0.0)
    for iteration, loss in enumerate([3.0, 1.0, 2.0], start=1):
        runtime.record(event(result(iteration, loss)))
    trial = runtime.trial
    assert [r["loss"] for r in read_results(trial.path)] == [3.0, 1.0, 2.0]
    assert (trial.num_results, trial.last_result["loss"], trial.metric_best) == (3, 2.0, 1.0)
    runtime.flush()
    with open(os.path.join(trial.path, "progress.csv")) as f:
        assert f.read().splitlines() == ["loss,training_iteration,time_total_s", "3.0,1,1.0", "1.0,2,2.0",
                                         "2.0,3,3.0"]


def test_keep_checkpoints_num_removes_the_oldest_from_disk(tmp_path):
    seen = Checkpoints()
    runtime, _ = make(tmp_path, keep=2, callbacks=[seen])
    runtime.start(PLACE, 0.0)
    paths = []
    for iteration in range(1, 5):
        paths.append(checkpoint_dir(runtime.trial.path, iteration))
        runtime.record(event(result(iteration, 1.0 / iteration), checkpoint=paths[-1]))
    assert [os.path.isdir(p) for p in paths] == [False, False, True, True]
    assert runtime.kept_checkpoints == [paths[2]]
    trial = runtime.trial
    assert (trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_total) == (paths[3], 4, 4.0)
    assert seen.seen == paths


def test_a_retry_rewinds_to_its_checkpoint_at_its_first_new_result(tmp_path):
    """Results after the checkpoint it restarts from come again: they move to
    result.rewound.jsonl once the first new one arrives, never counted twice."""
    runtime, changes = make(tmp_path)
    trial = runtime.trial
    runtime.start(PLACE, 0.0)
    for iteration in range(1, 6):
        checkpoint = checkpoint_dir(trial.path, iteration, float(iteration)) if iteration == 3 else None
        runtime.record(event(result(iteration, 10.0 - iteration), checkpoint=checkpoint))
    runtime.failed("RuntimeError: worker lost", "Traceback ...")
    runtime.retry()
    runtime.ended()
    assert (trial.status, trial.restore_iteration, trial.restore_time_total) == (Status.PENDING, 3, 3.0)
    assert changes[-1] == ("trial_00000", "PENDING", "retry")
    runtime.start(PLACE, 1.0)
    assert runtime.rewind_pending and trial.num_results == 5  # counted until it reports again
    runtime.record(event(result(4, 6.5)))
    assert [r["training_iteration"] for r in read_results(trial.path)] == [1, 2, 3, 4]
    assert read_results(trial.path)[-1]["loss"] == 6.5
    with open(os.path.join(trial.path, "result.rewound.jsonl")) as f:
        assert [json.loads(line)["training_iteration"] for line in f] == [4, 5]
    assert (trial.num_results, trial.metric_best) == (4, 6.5)  # 5.0 (iteration 5) was rewound
    with open(os.path.join(trial.path, "error.txt")) as f:
        assert f.read() == "--- attempt 1: RuntimeError: worker lost\nTraceback ...\n"


def test_a_mutation_takes_its_own_copy_of_the_donors_checkpoint(tmp_path):
    runtime, changes = make(tmp_path)
    runtime.start(PLACE, 0.0)
    runtime.record(event(result(1, 2.0)))
    donor = checkpoint_dir(str(tmp_path / "trial_00007"), 4)
    mutate = runtime.mutate(Mutate({"lr": 0.9}, donor))
    copy = mutate.checkpoint
    assert copy == os.path.join(runtime.trial.path, "checkpoint_clone_000001") and runtime.trial.checkpoint == copy
    assert sorted(os.listdir(copy)) == sorted(os.listdir(donor))
    with open(os.path.join(runtime.trial.path, "params.json")) as f:
        assert json.load(f) == {"lr": 0.9}
    assert changes[-1] == ("trial_00000", "RUNNING", "mutated")
    # Its own checkpoint is not copied again.
    assert runtime.mutate(Mutate({"lr": 0.8}, copy)).checkpoint == copy


def test_a_checkpoint_a_clone_replaced_counts_towards_keep_checkpoints_num(tmp_path):
    # PBT exploits replace a trial's checkpoint with a donor's copy; the replaced ones were never
    # removed, so a long PBT run with keep_checkpoints_num kept every trial's old weights on disk.
    runtime, _ = make(tmp_path, keep=1)
    runtime.start(PLACE, 0.0)
    own = checkpoint_dir(runtime.trial.path, 1)
    runtime.record(event(result(1, 2.0), checkpoint=own))
    copy = runtime.mutate(Mutate({"lr": 0.9}, checkpoint_dir(str(tmp_path / "trial_00007"), 4))).checkpoint
    assert not os.path.exists(own) and os.path.isdir(copy) and runtime.trial.checkpoint == copy
    # A pause's resume onto another donor (PBT while others wait) replaces the first copy in turn.
    runtime.record(event(result(5, 1.0)))
    runtime.paused()
    runtime.resume({"lr": 0.5}, checkpoint_dir(str(tmp_path / "trial_00003"), 6))
    assert not os.path.exists(copy) and os.path.isdir(runtime.trial.checkpoint)
    assert sorted(n for n in os.listdir(runtime.trial.path) if n.startswith("checkpoint")) == [
        os.path.basename(runtime.trial.checkpoint)]


def test_a_trial_directory_that_cannot_be_made_is_that_trials_storage_error(tmp_path):
    runtime, _ = make(tmp_path)
    with open(runtime.trial.path, "w") as f:
        f.write("a file where the trial's directory must go")
    runtime.start(PLACE, 0.0)
    with pytest.raises(TrialStorageError, match="could not write .*trial_00000"):
        runtime.record(event(result(1, 1.0)))
    assert runtime.trial.num_results == 0 and runtime.trial.last_result is None
    runtime.failed("OSError: cannot write", "")  # its error file cannot be written either: no raise
    assert runtime.trial.num_failures == 1


def test_a_full_disk_is_storage_full_naming_the_experiment_to_resume(tmp_path):
    with small_tmpfs(str(tmp_path / "disk"), "64k") as disk:
        runtime, _ = make(tmp_path / "disk")
        runtime.start(PLACE, 0.0)
        runtime.record(event(result(1, 1.0)))
        fill(disk)
        with pytest.raises(StorageFull) as raised:
            for iteration in range(2, 200):  # the file's buffer is flushed with each result
                runtime.record(event({**result(iteration, 1.0), "pad": "x" * 4096}))
        assert raised.value.experiment_dir == disk
        assert f"asynctune resume {disk}" in str(raised.value)
        runtime.close()  # never raises: what could not be flushed is logged
