"""What another local user can do: nothing with the files asynctune writes or loads, and warnings
about such things reach stderr without any logging set up. (The Dask cluster's side is in
test_dask.py.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import asynctune as at
from asynctune.store.private_files import check_private
from asynctune.store.signing import load_signed_pickle, sign
from asynctune.worker.session import load_checkpoint
from tests.helpers.driver_runs import kill_driver_after
from tests.helpers.paths import REPO_ROOT


def with_checkpoints(config):
    checkpoint = at.get_checkpoint() or {"step": 0}
    with open(os.path.join(at.get_trial_dir(), "notes.txt"), "a") as f:  # a file the trial writes itself
        f.write("hello\n")
    for step in range(checkpoint["step"] + 1, 4):
        time.sleep(0.1)  # long enough for the monitor to sample the trial
        at.report(loss=1.0 / step, checkpoint={"step": step})
    if config["fail"]:
        raise ValueError("this trial fails, so error.txt is written")


class WritesFiles(at.Trainable):
    def setup(self, config):
        self.value = 0

    def step(self):
        self.value += 1
        return {"loss": 1.0 / self.value, "done": self.value >= 3}

    def save_checkpoint(self, checkpoint_dir):
        os.makedirs(os.path.join(checkpoint_dir, "weights"))
        with open(os.path.join(checkpoint_dir, "weights", "layer0.txt"), "w") as f:
            f.write(str(self.value))


def _shared_bits(root: str) -> list[str]:
    """Every path under root (root included) that group or others may read, write or enter."""
    found = []
    for path in [root] + [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & 0o077:
            found.append(f"{path} {mode:04o}")
    return found


def test_everything_an_experiment_writes_is_private_to_the_user(storage):
    at.run(with_checkpoints, config={"fail": at.grid_search([False, True])}, metric="loss", mode="min",
           storage_path=storage, name="fn", verbose=0, monitor=0.05)
    analysis = at.run(WritesFiles, num_samples=2, metric="loss", mode="min", storage_path=storage, name="cls",
                      verbose=0, checkpoint_frequency=1)
    experiment = os.path.join(storage, "fn")
    for name in ("run_spec.pkl", "searcher_state.pkl", "journal.jsonl", "experiment.json"):
        assert os.path.exists(os.path.join(experiment, name)), name
    trial = os.path.join(experiment, "trial_00001")
    for name in ("result.jsonl", "progress.csv", "params.json", "error.txt", "stdout.txt", "stderr.txt",
                 "notes.txt", "monitor.jsonl", "checkpoint_000003/checkpoint.pkl"):
        assert os.path.exists(os.path.join(trial, name)), name
    assert os.path.exists(os.path.join(analysis.trials[0].checkpoint, "weights", "layer0.txt"))
    assert _shared_bits(storage) == []


def test_a_killed_drivers_experiment_is_private_too(tmp_path):
    """What a driver killed mid-run leaves (the room it keeps for its last save among it) is as
    private as what a run that ended leaves."""
    experiment = kill_driver_after(tmp_path, "killed", 8)
    assert os.path.exists(os.path.join(experiment, ".reserve"))  # released only by the last save
    assert _shared_bits(str(experiment)) == []


def _finished_experiment(storage: str) -> str:
    at.run(with_checkpoints, config={"fail": False}, metric="loss", mode="min", storage_path=storage, name="exp",
           verbose=0, tensorboard=False)
    return os.path.join(storage, "exp")


def _as_if_its_driver_was_killed(experiment: str) -> None:
    path = os.path.join(experiment, "experiment.json")
    with open(path) as f:
        snapshot = json.load(f)
    snapshot["status"] = "RUNNING"
    with open(path, "w") as f:
        json.dump(snapshot, f)


def test_resume_refuses_a_world_writable_experiment_directory(storage):
    experiment = _finished_experiment(storage)
    os.chmod(experiment, 0o777)
    with pytest.raises(at.UnsafeFileError) as caught:
        at.resume(experiment, verbose=0)
    message = str(caught.value)
    assert f"run_spec.pkl: its directory {experiment} is writable by group and others (mode 0777)" in message
    assert f"chmod 700 {experiment}" in message
    os.chmod(experiment, 0o700)  # as the message says: then it resumes
    assert at.resume(experiment, verbose=0).trials[0].status is at.Status.TERMINATED


def test_resume_refuses_a_pickle_owned_by_another_user(storage):
    experiment = _finished_experiment(storage)
    spec = os.path.join(experiment, "run_spec.pkl")
    os.chown(spec, 65534, 65534)
    with pytest.raises(at.UnsafeFileError, match=f"its file {spec} is owned by uid 65534, not by you"):
        at.resume(experiment, verbose=0)


def test_resume_refuses_a_group_writable_searcher_state(storage):
    # A searcher whose state resume reads (the default one is rebuilt by replaying the trials)
    at.run(with_checkpoints, config={"fail": False, "x": at.uniform(0, 1)}, metric="loss", mode="min",
           storage_path=storage, name="exp", verbose=0, tensorboard=False, search_alg=at.TPESearch(seed=0))
    experiment = os.path.join(storage, "exp")
    _as_if_its_driver_was_killed(experiment)  # a finished experiment is not resumed: nothing is loaded
    state = os.path.join(experiment, "searcher_state.pkl")
    os.chmod(state, 0o620)
    with pytest.raises(at.UnsafeFileError, match=f"searcher_state.pkl: its file {state} is writable by group "
                                                 r"\(mode 0620\).*chmod go-w"):
        at.resume(experiment, verbose=0)


def test_a_dict_checkpoint_in_a_directory_others_can_write_is_not_loaded(storage):
    experiment = _finished_experiment(storage)
    analysis = at.ExperimentAnalysis(experiment)
    assert analysis.load_best_checkpoint() == {"step": 3}
    os.chmod(analysis.best_checkpoint, 0o757)
    with pytest.raises(at.UnsafeFileError, match="writable by others"):
        analysis.load_best_checkpoint()
    with pytest.raises(at.UnsafeFileError):
        load_checkpoint(analysis.best_checkpoint)


def test_check_private_accepts_the_users_own_private_files(tmp_path):
    path = tmp_path / "state.pkl"
    path.write_bytes(sign(b"\x80\x05K\x07."))  # pickle of 7
    os.chmod(tmp_path, 0o755)  # readable by others is fine; writable is not
    os.chmod(path, 0o644)
    check_private(str(path))
    assert load_signed_pickle(str(path)) == 7


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)


_FAILING_RUN = """
    import logging
    import asynctune as at

    def fails(config):
        raise ValueError("boom")

    if __name__ == "__main__":
        {setup}
        at.run(fails, storage_path={storage!r}, verbose=0, tensorboard=False, raise_on_failed_trial=False)
"""


@pytest.mark.parametrize("setup, expected", [
    ("pass", ["asynctune: WARNING: trial trial_00000 failed: ValueError: boom"]),
    ("logging.basicConfig(format='APP %(name)s %(message)s')", ["APP asynctune.controller.outcomes trial trial_00000 failed"]),
    ("logging.getLogger('asynctune').addHandler(logging.NullHandler())", []),
], ids=["no-logging-set-up", "basicConfig-once-in-its-format", "silenced"])
def test_a_warning_reaches_stderr_once_unless_silenced(storage, setup, expected):
    done = _python(_FAILING_RUN.format(setup=setup, storage=storage))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "failed" in line]
    assert len(lines) == len(expected), done.stderr
    for line, start in zip(lines, expected):
        assert line.startswith(start)
