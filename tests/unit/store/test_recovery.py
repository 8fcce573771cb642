"""Rebuilding an experiment's state for a resume from what is on disk: experiment directories
made by a simulated run or written file by file as a killed driver leaves them, then damaged."""

from __future__ import annotations

import json
import os

import cloudpickle
import pytest

import asynctune as at
from asynctune.errors import UntrustedFileError
from asynctune.store.signing import sign
from asynctune.core.trial import Status
from asynctune.errors import ExperimentDamaged
from asynctune.store.layout import read_jsonl, write_params
from asynctune.store.recovery import (
    load_resume_state, recorded_history, repair_jsonl, restore_searcher, save_run_spec,
)
from tests.helpers.simulated import table


def train(config):
    at.report(loss=config["x"])


def experiment(tmp_path, **run_kwargs) -> str:
    """An experiment directory with its run_spec.pkl, as run() leaves it before the first trial."""
    path = tmp_path / "exp"
    path.mkdir(mode=0o700)
    save_run_spec(str(path), {"metric": "loss", "mode": "min", **run_kwargs}, cloudpickle.dumps(train), None)
    return str(path)


def journal(experiment_dir: str, *events: dict) -> None:
    with open(os.path.join(experiment_dir, "journal.jsonl"), "a") as f:
        for event in events:
            f.write(json.dumps(event) + "\n")


def trial_dir(experiment_dir: str, trial_id: str, config: dict | None, losses: list[float],
              checkpoints: dict[int, bool] | None = None) -> str:
    """A trial's directory: params, one result per loss (timestamps 10 s apart, the trial's index
    as the offset), and checkpoint_<k> directories, complete (metadata written) or not."""
    path = os.path.join(experiment_dir, trial_id)
    os.makedirs(path, mode=0o700)
    if config is not None:
        write_params(path, config)
    index = int(trial_id.split("_")[1])
    with open(os.path.join(path, "result.jsonl"), "w") as f:
        for i, loss in enumerate(losses, start=1):
            f.write(json.dumps({"loss": loss, "training_iteration": i, "time_total_s": float(i),
                                "timestamp": 10.0 * i + index, "trial_id": trial_id}) + "\n")
    for iteration, complete in (checkpoints or {}).items():
        checkpoint = os.path.join(path, f"checkpoint_{iteration:06d}")
        os.makedirs(checkpoint)
        if complete:
            with open(os.path.join(checkpoint, ".asynctune.json"), "w") as f:
                json.dump({"iteration": iteration, "time_total_s": float(iteration)}, f)
    return path


def added(trial_id: str, status: str = "PENDING", **config) -> dict:
    return {"event": "added", "trial_id": trial_id, "index": int(trial_id.split("_")[1]), "status": status,
            "config": config}


def status(trial_id: str, value: str) -> dict:
    return {"event": "status", "trial_id": trial_id, "status": value}


# What a resume starts from ------------------------------------------------------------------------

def test_a_finished_simulated_experiment_reads_back_as_it_ended(simulated):
    analysis = simulated(table(3, epochs=4), workers=2, recording="files")
    state = load_resume_state(analysis.experiment_dir)
    assert state.status == "FINISHED" and state.trainable is not None
    assert [(t.trial_id, t.status, t.num_results) for t in state.trials] == \
        [(f"trial_{i:05d}", Status.TERMINATED, 4) for i in range(3)]
    assert [t.metric_best for t in state.trials] == [t.metric_best for t in analysis.trials]
    assert [t.config for t in state.trials] == [{"x": 0}, {"x": 1}, {"x": 2}]
    history = list(recorded_history(state.trials))
    assert len(history) == 12
    times = [r["timestamp"] for _, r in history]
    assert times == sorted(times)  # in the order they were reported, across trials


def test_a_running_trial_restarts_from_its_newest_checkpoint_whose_result_was_recorded(tmp_path):
    experiment_dir = experiment(tmp_path)
    journal(experiment_dir, added("trial_00000", x=1), status("trial_00000", "RUNNING"),
            added("trial_00001", x=2), status("trial_00001", "RUNNING"), status("trial_00001", "TERMINATED"))
    # checkpoint 4 lacks its metadata (being written); 7 was written, its result never recorded
    running = trial_dir(experiment_dir, "trial_00000", {"x": 1}, [5.0, 4.0, 3.0, 2.0, 1.0],
                        {2: True, 3: True, 4: False, 7: True})
    trial_dir(experiment_dir, "trial_00001", {"x": 2}, [9.0, 8.0])
    state = load_resume_state(experiment_dir)
    first, second = state.trials
    assert (first.status, first.checkpoint, first.restore_checkpoint) == \
        (Status.PENDING, os.path.join(running, "checkpoint_000003"), os.path.join(running, "checkpoint_000003"))
    assert (first.restore_iteration, first.restore_time_total) == (3, 3.0)
    assert (first.num_results, first.metric_best) == (5, 1.0)  # counted until it reports them again
    assert second.status is Status.TERMINATED and second.restore_iteration == 0
    history = [(t.trial_id, r["training_iteration"]) for t, r in recorded_history(state.trials)]
    assert history == [("trial_00000", 1), ("trial_00001", 1), ("trial_00000", 2), ("trial_00001", 2),
                       ("trial_00000", 3)]  # the scheduler replays what the restarted trial will not repeat


def test_damaged_lines_move_aside_and_the_rest_is_kept(tmp_path):
    experiment_dir = experiment(tmp_path)
    journal(experiment_dir, added("trial_00000", x=1), {"event": "status", "trial_id": "../etc", "status": "RUNNING"})
    with open(os.path.join(experiment_dir, "journal.jsonl"), "a") as f:
        f.write("not json\n")
        f.write('{"event": "status", "trial_id": "trial_00000", "sta')  # the driver killed mid-line
    path = trial_dir(experiment_dir, "trial_00000", {"x": 1}, [3.0, 2.0])
    with open(os.path.join(path, "result.jsonl"), "a") as f:
        f.write('{"loss": 1.0, "training_iteration": "three"}\n')
    state = load_resume_state(experiment_dir)
    (trial,) = state.trials
    assert (trial.status, trial.num_results) == (Status.PENDING, 2)
    damaged = (tmp_path / "exp" / "journal.jsonl.damaged").read_text().splitlines()
    assert damaged[0] == "not json" and '"../etc"' in damaged[1]  # lines not JSON, then invalid records
    assert (tmp_path / "exp" / "journal.jsonl.torn").read_text().startswith('{"event": "status"')
    assert len(read_jsonl(os.path.join(experiment_dir, "journal.jsonl"))) == 1
    assert '"three"' in (tmp_path / "exp" / "trial_00000" / "result.jsonl.damaged").read_text()


def test_a_trial_the_journal_lost_comes_from_experiment_json_else_it_restarts(tmp_path):
    experiment_dir = experiment(tmp_path)
    journal(experiment_dir, added("trial_00000", x=1), status("trial_00000", "TERMINATED"))
    for trial_id in ("trial_00000", "trial_00001", "trial_00002"):
        trial_dir(experiment_dir, trial_id, {"x": trial_id}, [1.0], {1: True})
    with open(os.path.join(experiment_dir, "experiment.json"), "w") as f:
        json.dump({"status": "RUNNING", "time_used_s": 12.5, "trials": [
            {"trial_id": "trial_00001", "status": "ERROR", "num_failures": 3, "error": "boom"}]}, f)
    state = load_resume_state(experiment_dir)
    assert state.time_used_s == 12.5
    assert [(t.trial_id, t.status, t.num_failures) for t in state.trials] == [
        ("trial_00000", Status.TERMINATED, 0), ("trial_00001", Status.ERROR, 3), ("trial_00002", Status.PENDING, 0)]
    assert state.trials[2].restore_iteration == 1  # from its checkpoint
    assert [t.config for t in state.trials] == [{"x": "trial_00000"}, {"x": "trial_00001"}, {"x": "trial_00002"}]


def test_a_directory_made_as_the_driver_died_is_added_again(tmp_path):
    experiment_dir = experiment(tmp_path)
    journal(experiment_dir, added("trial_00000", x=1))
    trial_dir(experiment_dir, "trial_00000", {"x": 1}, [1.0])
    os.makedirs(os.path.join(experiment_dir, "trial_00001"))  # no params, no results yet
    assert [t.trial_id for t in load_resume_state(experiment_dir).trials] == ["trial_00000"]


# What it refuses, and how it says so ------------------------------------------------------------

def test_a_missing_trial_is_refused_naming_it(tmp_path):
    experiment_dir = experiment(tmp_path)
    journal(experiment_dir, added("trial_00000", x=0), added("trial_00002", x=2))
    trial_dir(experiment_dir, "trial_00000", {"x": 0}, [1.0])
    trial_dir(experiment_dir, "trial_00002", {"x": 2}, [1.0])
    with pytest.raises(ExperimentDamaged, match="trial_00001 is missing .* but trial_00002 exists") as raised:
        load_resume_state(experiment_dir)
    assert raised.value.path == os.path.join(experiment_dir, "trial_00001")


def test_a_trial_whose_config_nothing_holds_is_refused(tmp_path):
    experiment_dir = experiment(tmp_path)
    trial_dir(experiment_dir, "trial_00000", None, [1.0])  # results, but no params and no journal line
    with pytest.raises(ExperimentDamaged, match="has neither a readable params.pkl nor params.json"):
        load_resume_state(experiment_dir)


def test_what_is_not_an_experiment_is_refused_before_anything_is_read(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        load_resume_state(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="it has no run_spec.pkl"):
        load_resume_state(str(tmp_path))
    (tmp_path / "run_spec.pkl").write_bytes(b"not a pickle")
    os.chmod(tmp_path / "run_spec.pkl", 0o600)
    with pytest.raises(UntrustedFileError, match="run_spec.pkl: it is not signed"):  # refused before unpickling
        load_resume_state(str(tmp_path))
    (tmp_path / "run_spec.pkl").write_bytes(sign(b"not a pickle"))  # this user's, but damaged
    with pytest.raises(ValueError, match="run_spec.pkl is unreadable"):
        load_resume_state(str(tmp_path))


def test_an_unfinished_consolidated_simulation_is_rerun_not_resumed(tmp_path):
    experiment_dir = experiment(tmp_path)
    open(os.path.join(experiment_dir, "results.jsonl"), "w").close()
    with pytest.raises(ValueError, match="keeps no journal and is rerun, not resumed"):
        load_resume_state(experiment_dir)
    with open(os.path.join(experiment_dir, "experiment.json"), "w") as f:
        json.dump({"status": "FINISHED", "trials": []}, f)
    assert load_resume_state(experiment_dir).trials == []  # nothing to resume


def test_a_damaged_searcher_state_names_the_file_and_the_way_out(tmp_path):
    searcher = at.BasicVariantSearch()
    restore_searcher(searcher, str(tmp_path))  # none saved: nothing to do
    path = tmp_path / "searcher_state.pkl"
    path.write_bytes(sign(b"\x80\x05garbage"))  # this user's, but damaged
    os.chmod(path, 0o600)
    with pytest.raises(ExperimentDamaged, match="searcher_state.pkl is unreadable .* move it away") as raised:
        restore_searcher(searcher, str(tmp_path))
    assert raised.value.path == str(path)


def test_repair_jsonl_keeps_valid_records_in_order(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n{"a": -1}\n{"a": 2}\n{"a": 3')
    records = repair_jsonl(str(path), lambda r, line: None if r["a"] >= 0 else "'a' is negative")
    assert records == [{"a": 1}, {"a": 2}]
    assert read_jsonl(str(path)) == records
    assert (tmp_path / "x.jsonl.damaged").read_text().splitlines() == ["[1, 2]", '{"a": -1}']
    assert (tmp_path / "x.jsonl.torn").read_text() == '{"a": 3\n'
