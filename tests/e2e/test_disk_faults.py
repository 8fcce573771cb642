"""Disk faults under a running experiment (issue 15, items 2, 3, 4, 6, 9): one trial's unwritable
directory stays that trial's failure; a full disk stops the experiment cleanly and resumably;
every session's results count; resume names are checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import asynctune as at
from tests.helpers.disks import mount, umount


def steps(config):
    for step in range(config.get("steps", 5)):
        time.sleep(config.get("sleep", 0.0))
        at.report(loss=float(config["x"]) + 1 / (step + 1))


class Steps(at.Trainable):
    """`steps` as a Trainable, writing a checkpoint directory into the trial's directory."""

    def step(self):
        time.sleep(self.config.get("sleep", 0.0))
        return {"loss": float(self.config["x"]) + 1 / (self.iteration + 1)}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "state"), "w") as f:
            f.write(str(self.iteration))

    def load_checkpoint(self, checkpoint):
        pass


# 2. One trial's directory cannot be written: that trial fails, the experiment goes on.

class BlockTrialOne(at.Callback):
    def on_experiment_start(self, experiment_dir, trials):
        # a file where trial_00001's directory must go: every write into it fails
        with open(os.path.join(experiment_dir, "trial_00001"), "w") as f:
            f.write("in the way")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("at_once", [None, 1], ids=["others running", "none running"])
def test_a_trial_whose_directory_cannot_be_created_fails_alone(storage, at_once):
    """With none running beside it (max_concurrent_trials=1), the loop waited for a trial to end
    before it added the next: nothing ran, so it waited for ever."""
    analysis = at.run(steps, config={"x": at.grid_search([1, 2, 3])}, metric="loss", mode="min",
                      storage_path=storage, name="blocked", verbose=0, callbacks=[BlockTrialOne()],
                      max_concurrent_trials=at_once)
    status = {t.trial_id: t.status for t in analysis.trials}
    assert status == {"trial_00000": at.Status.TERMINATED, "trial_00001": at.Status.ERROR,
                      "trial_00002": at.Status.TERMINATED}
    failed = next(t for t in analysis.trials if t.trial_id == "trial_00001")
    assert "trial_00001" in failed.error and ("Not a directory" in failed.error or "File exists" in failed.error)
    for trial_id in ("trial_00000", "trial_00002"):
        assert len(analysis.trial_results(trial_id)) == 5
    with open(os.path.join(storage, "blocked", "experiment.json")) as f:
        saved = {t["trial_id"]: t for t in json.load(f)["trials"]}
    assert saved["trial_00001"]["status"] == "ERROR" and saved["trial_00001"]["error"]


def test_a_trial_directory_that_turns_read_only_mid_run_fails_that_trial_only(storage):
    mounted = []

    class FreezeTrialZero(at.Callback):
        def on_trial_result(self, trial, result):
            if trial.trial_id == "trial_00000" and trial.num_results == 2 and not mounted:
                mount(trial.path, ["--bind", trial.path])
                mounted.append(trial.path)
                subprocess.run(["mount", "-o", "remount,bind,ro", trial.path], check=True)

    try:  # (files the driver holds open stay writable on a read-only bind mount: the worker's
        # checkpoints and the driver's error.txt and reopened files are what fail)
        analysis = at.run(Steps, config={"x": at.grid_search([1, 2]), "sleep": 0.05}, metric="loss",
                          mode="min", storage_path=storage, name="frozen", verbose=0, checkpoint_frequency=1,
                          stop={"training_iteration": 5}, max_concurrent_trials=2, max_failures=2,
                          callbacks=[FreezeTrialZero()])
    finally:
        for path in mounted:
            umount(path)
    if not mounted:
        pytest.skip("could not make a directory read-only")
    frozen, healthy = analysis.trials
    assert frozen.status is at.Status.ERROR and "Read-only file system" in frozen.error
    assert healthy.status is at.Status.TERMINATED and len(analysis.trial_results(healthy.trial_id)) == 5
    # what it reported before its directory froze is still there
    assert [r["training_iteration"] for r in analysis.trial_results(frozen.trial_id)][:2] == [1, 2]


def test_resuming_an_experiment_on_a_read_only_file_system_is_a_clear_error(tmp_path):
    """An experiment kept where it cannot be written (an archive mounted read-only) is refused in
    one line by `asynctune resume`, naming it and the cause, before anything is read or repaired;
    the read-only commands work on it."""
    from tests.helpers.driver_runs import kill_driver_after

    experiment_dir = kill_driver_after(tmp_path, "archived", 8)
    before = {p: p.read_bytes() for p in experiment_dir.rglob("*") if p.is_file()}
    mount(str(experiment_dir), ["--bind", str(experiment_dir)])
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(experiment_dir)], check=True)
        with pytest.raises(ValueError, match=f"cannot resume {experiment_dir}: it is on a read-only file system"):
            at.resume(str(experiment_dir), verbose=0)
        done = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", str(experiment_dir)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "read-only file system" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert len(at.ExperimentAnalysis(str(experiment_dir)).trials) >= 2
    finally:
        umount(str(experiment_dir))
    assert {p: p.read_bytes() for p in experiment_dir.rglob("*") if p.is_file()} == before


# A file the driver writes grows past what the file system allows (EFBIG: here a file-size
# limit, as FAT32's 4 GiB): the trial whose result.jsonl cannot take its next line fails alone.

BIG_FILE_SCRIPT = textwrap.dedent("""
    import resource, signal, sys, time
    import asynctune as at

    def train(config):
        for step in range(30):
            time.sleep(0.01)
            at.report(loss=config["x"] + step, padding="#" * config["padding"])

    if __name__ == "__main__":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
        analysis = at.run(train, config={"x": at.grid_search([1, 2]), "padding": at.grid_search([10, 20000])},
                          metric="loss", mode="min", max_concurrent_trials=2, storage_path=sys.argv[1],
                          name="big", verbose=0)
        for trial in analysis.trials:
            print(trial.config["padding"], trial.status.value, len(analysis.trial_results(trial.trial_id)),
                  trial.error)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ")
def test_a_result_that_cannot_be_written_fails_only_its_trial(tmp_path):
    script = tmp_path / "big.py"
    script.write_text(BIG_FILE_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "r")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rows = sorted(line.split(None, 3) for line in done.stdout.splitlines())  # padding, status, results, error
    assert [row[:3] for row in rows[:2]] == [["10", "FINISHED", "30"]] * 2, rows
    for padding, status, results, error in rows[2:]:  # 30 results of 20 kB: past the 400 kB limit
        assert status == "ERROR" and 0 < int(results) < 30
        assert "could not write" in error and "result.jsonl" in error and "File too large" in error
    assert "Traceback" not in done.stderr, done.stderr


# 3. The disk fills up: stop cleanly, say so, and resume once there is room.

FILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import asynctune as at

    def train(config):
        for step in range(40):
            time.sleep(0.01)
            at.report(loss=config["x"] + step, padding="#" * 20000)

    if __name__ == "__main__":
        at.run(train, config={"x": at.grid_search([1, 2, 3, 4])}, metric="loss", mode="min",
               max_concurrent_trials=2, storage_path=sys.argv[1], name="full", verbose=1)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs")
def test_a_full_disk_stops_cleanly_with_a_resume_hint_and_resumes(tmp_path):
    storage = str(tmp_path / "small")
    mount(storage, ["-t", "tmpfs", "-o", "size=1200k", f"asynctune-{uuid.uuid4().hex[:8]}"])
    try:
        script = tmp_path / "fill.py"
        script.write_text(FILL_SCRIPT)
        done = subprocess.run([sys.executable, str(script), storage], capture_output=True, text=True, timeout=90)
        experiment_dir = os.path.join(storage, "full")
        assert done.returncode != 0
        assert "No space left on device" in done.stderr, done.stderr
        assert f"asynctune resume {experiment_dir}" in done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        with open(os.path.join(experiment_dir, "experiment.json")) as f:
            assert json.load(f)["status"] == "INTERRUPTED"
        before = {t: len(open(os.path.join(experiment_dir, t, "result.jsonl")).read().splitlines())
                  for t in os.listdir(experiment_dir) if t.startswith("trial_")
                  and os.path.exists(os.path.join(experiment_dir, t, "result.jsonl"))}
        assert sum(before.values()) > 0
        subprocess.run(["mount", "-o", "remount,size=64m", storage], check=True)
        analysis = at.resume(experiment_dir, verbose=0)
        assert len(analysis.trials) == 4
        for trial in analysis.trials:
            iterations = [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)]
            assert iterations == list(range(1, 41)), (trial.trial_id, iterations[:5], len(iterations))
    finally:
        umount(storage)



JOURNAL_LIMITED = textwrap.dedent("""
    import resource, sys
    import asynctune as at

    def train(config):
        for step in range(3):
            at.report(loss=config["x"] + 1 / (step + 1))

    if __name__ == "__main__":
        resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))  # no file of the driver's grows past it
        at.run(train, config={"x": at.grid_search(list(range(30)))}, metric="loss", mode="min",
               max_concurrent_trials=2, storage_path=sys.argv[1], name="limited", verbose=0)
""")


def test_a_journal_that_cannot_grow_stops_the_experiment_resumably(tmp_path):
    """A write to journal.jsonl refused for another reason than space (here a file-size limit, as
    on a file system turned read-only or failing) was logged and the run went on, recording
    nothing more of its trials, and ended as if all was well (status 0)."""
    script = tmp_path / "limited.py"
    script.write_text(JOURNAL_LIMITED)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    experiment_dir = str(tmp_path / "limited")
    assert done.returncode == 1, done.stderr
    assert f"could not write {os.path.join(experiment_dir, 'journal.jsonl')}: File too large" in done.stderr
    assert f"asynctune resume {experiment_dir}" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert at.ExperimentAnalysis(experiment_dir).status == "INTERRUPTED"  # (experiment.json may be over the limit too)
    analysis = at.resume(experiment_dir, verbose=0)  # without the limit
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 30
    for trial in analysis.trials:
        assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3]


SPEC_LIMITED = textwrap.dedent("""
    import resource, signal, sys
    import asynctune as at

    WEIGHTS = b"w" * 50_000  # in the trainable's closure: run_spec.pkl outgrows the limit

    def train(config):
        at.report(loss=len(WEIGHTS) + config["x"])

    if __name__ == "__main__":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        try:
            at.run(train, config={"x": at.grid_search([1, 2])}, metric="loss", mode="min",
                   storage_path=sys.argv[1], name="spec", verbose=0)
        except at.RunSpecNotWritten as exc:
            print("refused:", exc)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ")
def test_a_run_spec_that_cannot_be_written_is_one_line_and_leaves_nothing_half_written(tmp_path):
    # Before: a raw OSError traceback from deep in the store, and run_spec.pkl.tmp left behind.
    script = tmp_path / "spec.py"
    script.write_text(SPEC_LIMITED)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60)
    experiment_dir = tmp_path / "spec"
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: could not write {experiment_dir / 'run_spec.pkl'}: File too large. "
                                  "Nothing was started"), done.stdout
    assert not [n for n in os.listdir(experiment_dir) if n.startswith(("run_spec", "trial_"))]
    # The name is free again: the same run without the limit starts there.
    analysis = at.run(train_small, config={"x": at.grid_search([1, 2])}, metric="loss", mode="min",
                      storage_path=str(tmp_path), name="spec", verbose=0)
    assert len(analysis.trials) == 2


def train_small(config):
    at.report(loss=config["x"])


# 4. A value no float can hold is recorded first, and counts as no number.

def huge_then_normal(config):
    at.report(loss=10**400)
    for step in range(3):
        at.report(loss=float(step))


def _fills_the_disk(config):
    """Each step checkpoints; the disk fills up once, just before the third checkpoint."""
    start = at.get_checkpoint() or {"step": 0}
    for step in range(start["step"] + 1, 6):
        time.sleep(0.05)
        if step == 3 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            with open(config["filler"], "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass
        at.report(loss=config["x"] + 1 / step, checkpoint={"step": step, "weights": "w" * 5000})


@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs")
def test_a_trial_whose_checkpoint_fills_the_disk_is_not_counted_as_failed(tmp_path):
    """A trial whose own write (its checkpoint) fails for lack of space stops the experiment
    resumably, as the driver's writes do: its worker reports the error although stderr.txt, on
    the same full disk, cannot take the traceback (the worker died of that), and the trial is
    not counted as failed: it runs again after the resume."""
    storage = str(tmp_path / "small")
    mount(storage, ["-t", "tmpfs", "-o", "size=1200k", f"asynctune-{uuid.uuid4().hex[:8]}"])
    try:
        filler = os.path.join(storage, "filler")
        config = {"x": 0, "filler": filler, "marker": str(tmp_path / "filled")}
        with pytest.raises(at.StorageFull):
            at.run(_fills_the_disk, config=config, metric="loss", mode="min", storage_path=storage, name="full",
                   verbose=0, tensorboard=False)
        with open(os.path.join(storage, "full", "experiment.json")) as f:
            trial = json.load(f)["trials"][0]
        assert trial["status"] != "ERROR" and trial["num_failures"] == 0, trial["error"]  # not the trial's failure
        os.unlink(filler)
        analysis = at.resume(os.path.join(storage, "full"), verbose=0)
        assert [t.status for t in analysis.trials] == [at.Status.FINISHED], [t.error for t in analysis.trials]
        for trial in analysis.trials:
            assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3, 4, 5]
    finally:
        umount(storage)


def test_a_result_too_large_for_a_float_is_recorded_and_the_trial_goes_on(storage):
    analysis = at.run(huge_then_normal, config={"x": 1}, metric="loss", mode="min", storage_path=storage,
                      name="huge", verbose=0)
    trial = analysis.trials[0]
    assert trial.status is at.Status.TERMINATED, trial.error
    assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3, 4]
    assert analysis.best_config == {"x": 1} and trial.metric_best == 0.0
    assert at.ExperimentAnalysis(os.path.join(storage, "huge")).best_config == {"x": 1}


# 9. Names are checked when resuming too.

@pytest.mark.parametrize("name", ["../outside/x", "a/b", "..", "/abs"])
def test_resume_true_with_a_path_as_name_is_refused(storage, tmp_path, name):
    with pytest.raises(ValueError, match="name must be a plain directory name"):
        at.run(steps, config={"x": 1}, storage_path=storage, name=name, resume=True, verbose=0)
    assert not (tmp_path / "outside").exists()


def test_resume_true_does_not_reach_an_experiment_outside_storage_path(storage, tmp_path):
    at.run(steps, config={"x": 1, "steps": 2}, storage_path=str(tmp_path / "outside"), name="x", verbose=0)
    journal = tmp_path / "outside" / "x" / "journal.jsonl"
    before = journal.read_text()
    os.makedirs(storage)  # so that storage/../outside/x is a path that exists
    with pytest.raises(ValueError, match="name must be a plain directory name"):
        at.run(steps, config={"x": 1}, storage_path=storage, name="../outside/x", resume=True, verbose=0)
    assert journal.read_text() == before
