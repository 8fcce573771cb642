"""Weights & Biases in offline mode: runs written by real experiments, their run files read back."""

from __future__ import annotations

import glob
import os

import pytest

import asynctune as at
from tests.helpers.tracker_runs import interrupted_experiment

wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install 'asynctune[wandb]')")
from tests.helpers.wandb_offline import read_run  # noqa: E402

from asynctune.integrations.wandb import WandbLoggerCallback, run_id, setup_wandb  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    wandb.teardown()  # W&B's service process lives as long as the driver unless told to end


def _runs_by_id(directory):
    """Every offline run under `directory`, oldest first within each id (a resumed run has several)."""
    runs = {}
    for run_dir in sorted(glob.glob(os.path.join(str(directory), "**", "offline-run-*"), recursive=True)):
        run = read_run(run_dir)
        runs.setdefault(run["id"], []).append(run)
    return runs


def _train(config):
    for i in range(1, 5):
        if config["x"] == 3 and i == 3:
            raise RuntimeError("diverged")
        at.report(loss=config["x"] / i, nested={"acc": i / 10})


def test_each_trial_is_an_offline_run_with_config_metrics_and_status(storage):
    analysis = at.run(_train, config={"x": at.grid_search([1, 2, 3])}, metric="loss", mode="min",
                      storage_path=storage, name="wandb_runs", max_failures=0, verbose=0,
                      callbacks=[WandbLoggerCallback(project="p", mode="offline")])
    runs = _runs_by_id(os.path.join(analysis.experiment_dir, "wandb"))
    assert len(runs) == 3
    for trial in analysis.trials:
        (run,) = runs[run_id(analysis.experiment_dir, trial.trial_id)]
        assert (run["name"], run["group"], run["project"]) == (trial.trial_id, "wandb_runs", "p")
        assert run["config"]["x"] == trial.config["x"] and run["config"]["asynctune_trial_id"] == trial.trial_id
        reported = analysis.trial_results(trial.trial_id)
        assert [(h["_step"], h["loss"]) for h in run["history"]] == [(r["training_iteration"], r["loss"])
                                                                      for r in reported]
        assert run["history"][-1]["nested/acc"] == pytest.approx(trial.last_result["nested"]["acc"])
        assert run["summary"]["loss"] == trial.last_result["loss"]  # the final metric, as the analysis has it
        assert run["summary"]["asynctune_status"] == trial.status.value
        assert run["exit_code"] == (1 if trial.status is at.Status.ERROR else 0)


def test_a_resumed_experiment_continues_the_same_runs(tmp_path):
    experiment_dir = interrupted_experiment(tmp_path, "resumed", "from asynctune.integrations.wandb import "
                                            "WandbLoggerCallback", 'WandbLoggerCallback(project="p", mode="offline")')
    interrupted = {i for i, runs in _runs_by_id(experiment_dir / "wandb").items()
                   if runs[-1]["summary"]["asynctune_status"] != "FINISHED"}
    assert interrupted

    analysis = at.resume(str(experiment_dir), verbose=0)
    runs = _runs_by_id(experiment_dir / "wandb")
    assert sorted(runs) == sorted(run_id(analysis.experiment_dir, t.trial_id) for t in analysis.trials)
    for trial in analysis.trials:
        parts = runs[run_id(analysis.experiment_dir, trial.trial_id)]
        assert len(parts) == (2 if run_id(analysis.experiment_dir, trial.trial_id) in interrupted else 1)
        assert {h["_step"] for part in parts for h in part["history"]} == set(range(1, 9))
        assert parts[-1]["summary"]["asynctune_status"] == "FINISHED" and parts[-1]["exit_code"] == 0
        assert parts[-1]["summary"]["loss"] == trial.last_result["loss"]


def _train_with_setup_wandb(config):
    with setup_wandb(config, project="p", mode="offline") as run:  # finished (failed) when the trial raises
        start = (at.get_checkpoint() or {"i": 0})["i"]
        for i in range(start, 4):
            run.log({"inner": i * config["x"]}, step=i)
            at.report(loss=float(i), checkpoint={"i": i + 1})
            if i == 1 and not os.path.exists(os.path.join(at.get_trial_dir(), "failed_once")):
                open(os.path.join(at.get_trial_dir(), "failed_once"), "w").close()
                raise RuntimeError("first attempt fails")


def test_setup_wandb_logs_from_the_trial_and_a_retry_continues_its_run(storage):
    analysis = at.run(_train_with_setup_wandb, config={"x": at.grid_search([1, 2])}, storage_path=storage,
                      name="inside", max_failures=1, verbose=0)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
    for trial in analysis.trials:
        runs = _runs_by_id(trial.path)
        (parts,) = runs.values()  # both attempts are one run, in the trial's directory
        assert len(parts) == 2 and parts[0]["name"] == trial.trial_id and parts[0]["config"]["x"] == trial.config["x"]
        assert [part["exit_code"] for part in parts] == [1, 0]
        assert [h["_step"] for part in parts for h in part["history"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs, match", [
    ({"project": ""}, "project"),
    ({"mode": "cloud"}, "mode"),
    ({"exclude": "loss"}, "exclude"),
    ({"id": "mine"}, "set per trial"),
])
def test_bad_arguments_are_rejected_with_their_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WandbLoggerCallback(**kwargs)
