"""Atomic publish (issue 27, case 2): a checkpoint (a trial's, or a donor's copied by PBT) appears
whole under its name or not at all; a process killed at any instant never leaves one that resume
would pick. Real processes killed with SIGKILL mid-copy, real files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import asynctune as at

MARKER = ".asynctune.json"  # written last by a trial; what tells resume a checkpoint is complete

CLONE = textwrap.dedent("""
    import sys
    from asynctune.store.layout import copy_checkpoint

    print("copying", flush=True)
    copy_checkpoint(sys.argv[1], sys.argv[2], "checkpoint_clone_000004")
    print("copied", flush=True)
""")


def _donor(directory) -> dict[str, int]:
    """A donor checkpoint whose marker is listed (so copied) before most of its data, as a
    directory listing may order them; returns its files and sizes."""
    for attempt in range(50):
        donor = os.path.join(directory, f"donor_{attempt}")
        os.makedirs(donor)
        with open(os.path.join(donor, MARKER), "w") as f:
            f.write('{"iteration": 4, "time_total_s": 1.0}')
        for i in range(6):
            with open(os.path.join(donor, f"weights_{attempt}_{i}.bin"), "wb") as f:
                f.write(os.urandom(1 << 20) * 6)  # 6 MiB each: the copy takes tens of milliseconds
        names = os.listdir(donor)
        if names.index(MARKER) <= 1:
            return donor, {n: os.path.getsize(os.path.join(donor, n)) for n in names}
    pytest.skip("no file order with the marker first on this file system")


def _complete(checkpoint: str, files: dict[str, int]) -> bool:
    return all(os.path.exists(os.path.join(checkpoint, n)) and os.path.getsize(os.path.join(checkpoint, n)) == size
               for n, size in files.items())


def test_clone_killed_mid_copy_is_never_picked_by_resume(tmp_path):
    from asynctune.store.layout import latest_checkpoint

    donor, files = _donor(tmp_path)
    script = tmp_path / "clone.py"
    script.write_text(CLONE)
    rng = random.Random(27)
    kills = picked_partial = mid_copy = 0
    for attempt in range(8):
        trial_dir = tmp_path / f"trial_{attempt:05d}"
        trial_dir.mkdir()
        process = subprocess.Popen([sys.executable, str(script), donor, str(trial_dir)], stdout=subprocess.PIPE)
        assert process.stdout.readline() == b"copying\n"
        time.sleep(rng.uniform(0.0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        kills += 1
        clone = os.path.join(trial_dir, "checkpoint_clone_000004")
        mid_copy += not _complete(clone, files)  # killed before the copy was done
        newest = latest_checkpoint(str(trial_dir))  # what resume would restore
        if newest is not None and not _complete(newest[0], files):
            picked_partial += 1
    assert kills == 8 and mid_copy >= 1, "no kill landed during a copy: the test proves nothing"
    assert picked_partial == 0, f"{picked_partial} of {kills} kills left a partial clone that resume picks"


class Saver(at.Trainable):
    def setup(self, config):
        self.count = 0

    def step(self):
        self.count += 1
        return {"score": self.count}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "state.txt"), "w") as f:
            f.write(str(self.count))
        assert os.path.basename(checkpoint_dir).startswith(".tmp-checkpoint_")  # filled before it is named

    def load_checkpoint(self, checkpoint):
        with open(os.path.join(checkpoint, "state.txt")) as f:
            self.count = int(f.read())


def test_checkpoints_are_filled_under_a_temporary_name_then_published(storage):
    analysis = at.run(Saver, stop={"training_iteration": 4}, checkpoint_frequency=1, storage_path=storage,
                      name="exp", metric="score", mode="max", verbose=0, keep_checkpoints_num=2)
    trial = analysis.trials[0]
    assert trial.status is at.Status.TERMINATED, trial.error
    names = sorted(os.listdir(trial.path))
    assert [n for n in names if n.startswith("checkpoint_")] == ["checkpoint_000003", "checkpoint_000004"]
    assert not [n for n in names if n.startswith((".tmp-", ".trash-"))]  # nothing left half done
    assert analysis.best_checkpoint == os.path.join(trial.path, "checkpoint_000004")
