"""The framework integrations' checkpoints (integrations/_common.report_with_checkpoint), without
any framework: a trainable that saves the way a framework callback does, in real worker processes.

The framework writes straight into the checkpoint's place in the trial's directory, so nothing is
left in the temp directory, also when the worker dies in the middle of a save."""

from __future__ import annotations

import os
import stat

import asynctune
from asynctune.integrations._common import report_with_checkpoint


def _save_model(directory: str) -> None:
    with open(os.path.join(directory, "model.bin"), "wb") as f:  # under the umask, as a framework writes
        f.write(b"weights" * 1000)
    os.mkdir(os.path.join(directory, "optimizer"))
    with open(os.path.join(directory, "optimizer", "state.json"), "w") as f:
        f.write("{}")


def _trainable(config):
    for step in range(3):
        if config["die_in_save"] and step == 1:
            def save(directory):
                _save_model(directory)
                os.kill(os.getpid(), 9)  # the worker is killed half way through a save
        else:
            save = _save_model if step != 2 else None  # a result without a checkpoint too
        report_with_checkpoint({"loss": 1.0 / (step + 1), "step": step}, save)


def test_a_framework_checkpoint_is_written_in_the_trial_directory_and_private(storage, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the workers' temp directory
    analysis = asynctune.run(_trainable, config={"die_in_save": False}, metric="loss", mode="min",
                             storage_path=storage, name="ckpt", verbose=0)
    trial = analysis.trials[0]
    assert trial.status == "FINISHED"
    assert [r["step"] for r in analysis.trial_results(trial.trial_id)] == [0, 1, 2]
    checkpoint = trial.checkpoint
    assert checkpoint is not None and os.path.commonpath([checkpoint, trial.local_path]) == trial.local_path
    assert os.path.basename(checkpoint) == "checkpoint_000002"  # numbered by the result it came with
    with open(os.path.join(checkpoint, "model.bin"), "rb") as f:
        assert f.read() == b"weights" * 1000
    for root, dirs, files in os.walk(checkpoint):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600, name
    assert not [n for n in os.listdir(trial.local_path) if n.startswith(".tmp-")]
    assert os.listdir(scratch) == []


def test_a_worker_killed_while_a_framework_saves_leaves_nothing_in_the_temp_directory(storage, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    analysis = asynctune.run(_trainable, config={"die_in_save": True}, metric="loss", mode="min",
                             storage_path=storage, name="killed", verbose=0, raise_on_failed_trial=False)
    trial = analysis.trials[0]
    assert trial.status == "ERROR"
    assert [r["step"] for r in analysis.trial_results(trial.trial_id)] == [0]
    assert os.listdir(scratch) == []  # the model of the torn save is not left in /tmp
    # The torn save never became a checkpoint: the last one is the first result's.
    assert os.path.basename(trial.checkpoint) == "checkpoint_000001"
