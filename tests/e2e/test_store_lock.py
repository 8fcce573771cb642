"""One driver per experiment (issue 27, case 1): a second driver, resume or `asynctune resume` is
refused at once naming the holder; a SIGKILLed holder leaves no stale lock; a new run with the same
name never touches the running one's files. Real driver processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import asynctune as at
from tests.helpers.driver_runs import start_script, wait_for_results
from tests.helpers.held_driver import held_driver, start_held

SLOW_DRIVER = held_driver(results=40, hold_after=3)  # a driver held mid-run while a file exists


def _iterations(trial_dir) -> list[int]:
    with open(os.path.join(trial_dir, "result.jsonl")) as f:
        return [json.loads(line)["training_iteration"] for line in f]


def test_second_driver_refused_naming_holder_and_no_stale_lock_after_sigkill(storage, tmp_path):
    driver, hold = start_held(tmp_path, SLOW_DRIVER, storage)
    experiment = os.path.join(storage, "exp")
    try:
        wait_for_results(experiment, 4)
        spec_before = open(os.path.join(experiment, "run_spec.pkl"), "rb").read()

        with pytest.raises(at.AsynctuneError, match=rf"being driven by another process \(pid {driver.pid} on "):
            at.resume(experiment, verbose=0)
        with pytest.raises(at.AsynctuneError, match=rf"pid {driver.pid}"):
            at.run(lambda config: None, storage_path=storage, name="exp", resume=True, verbose=0)
        with pytest.raises(at.AsynctuneError, match=rf"pid {driver.pid}"):  # a new run with the same name
            at.run(lambda config: None, storage_path=storage, name="exp", verbose=0)
        cli = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", experiment],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 2 and f"pid {driver.pid}" in cli.stderr, cli.stderr
        assert "Traceback" not in cli.stderr and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        # None of them touched the running experiment's files.
        assert open(os.path.join(experiment, "run_spec.pkl"), "rb").read() == spec_before
        assert driver.poll() is None
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        hold.unlink()

    # The kernel dropped the killed holder's lock: resume goes at once, and finishes the experiment.
    analysis = at.resume(experiment, verbose=0)
    assert analysis.status == "FINISHED"
    for trial in analysis.trials:
        assert _iterations(trial.path) == list(range(1, 41)), "results doubled or lost"


def test_two_new_runs_with_one_name_at_once_one_is_refused(storage, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    first = start_script(tmp_path / "a.py", SLOW_DRIVER, storage, hold)
    second = start_script(tmp_path / "b.py", SLOW_DRIVER, storage, hold)
    wait_for_results(os.path.join(storage, "exp"), 2)
    time.sleep(1)  # both have started by now (the one refused has ended)
    hold.unlink()
    outputs = [p.communicate(timeout=120)[0].decode() for p in (first, second)]
    codes = [first.returncode, second.returncode]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, (codes, outputs)
    refused = outputs[codes.index(max(codes))]
    winner = (first, second)[codes.index(0)]
    assert f"being driven by another process (pid {winner.pid}" in refused
    analysis = at.ExperimentAnalysis(os.path.join(storage, "exp"))
    assert len(analysis.trials) == 2
    for trial in analysis.trials:
        assert _iterations(trial.path) == list(range(1, 41)), "results doubled"


def test_lock_released_when_the_driver_ends_and_holder_recorded(storage):
    def train(config):
        at.report(score=1)

    at.run(train, storage_path=storage, name="done", verbose=0)
    experiment = os.path.join(storage, "done")
    from asynctune.store.lock import DriverLock, read_holder

    assert read_holder(experiment) == {}  # released, and no holder left recorded
    with DriverLock.acquire(experiment) as lock:
        holder = read_holder(experiment)
        assert holder["pid"] == os.getpid() and holder["host"] and holder["start_time"]
        with pytest.raises(at.AsynctuneError, match=f"pid {os.getpid()}"):
            at.resume(experiment, verbose=0)  # the same process, another driver: refused too
        assert lock.held


def test_default_names_are_claimed_exclusively(storage):
    from asynctune.store.lock import claim_fresh_name

    names = [claim_fresh_name(storage, "train_2026-12-07_05-00-00") for _ in range(3)]
    assert names == ["train_2026-12-07_05-00-00", "train_2026-12-07_05-00-00_2", "train_2026-12-07_05-00-00_3"]
    assert all(os.path.isdir(os.path.join(storage, n)) for n in names)


def test_a_driver_refused_in_the_moment_before_the_holder_names_itself_still_names_it(tmp_path):
    # The holder locks, then writes who it is: a second driver in between read an empty record
    # and said "a process starting now" (seen under load when two runs start at once).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, json, os, sys, time\n"
        f"fd = os.open({str(tmp_path / 'driver.lock')!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(0.5)\n"
        "os.pwrite(fd, json.dumps({'pid': os.getpid(), 'host': 'h', 'start_time': 't'}).encode(), 0)\n"
        "sys.stdin.read()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(at.ExperimentLocked, match=f"pid {holder.pid} on h"):
            at.store.lock.DriverLock.acquire(str(tmp_path))
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    at.store.lock.DriverLock.acquire(str(tmp_path)).release()  # free once the holder has ended


def test_a_lock_file_that_is_a_link_is_refused_in_one_line(tmp_path):
    """A directory from elsewhere (an archive) whose driver.lock is a symbolic link: resume says
    so in one line, before it reads anything, and the file the link leads to is left alone."""
    from tests.helpers.driver_runs import kill_driver_after

    experiment = kill_driver_after(tmp_path, "linked", 6)
    outside = tmp_path / "someone_elses_file"
    outside.write_text("not yours\n")
    os.unlink(experiment / "driver.lock")
    os.symlink(outside, experiment / "driver.lock")
    with pytest.raises(ValueError, match=rf"refusing to lock {experiment}/driver.lock: it is a symbolic link"):
        at.resume(str(experiment), verbose=0)
    done = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", str(experiment)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "it is a symbolic link" in done.stderr and "Traceback" not in done.stderr, \
        done.stderr
    assert outside.read_text() == "not yours\n"
    os.unlink(experiment / "driver.lock")  # as the message says: then it resumes
    assert len(at.resume(str(experiment), verbose=0).trials) == 6


def test_a_reader_asking_whether_a_driver_runs_never_gets_a_resume_refused(tmp_path):
    """`asynctune ls` and the dashboard take a shared lock for an instant (is_driven). A resume that
    comes in that instant, with a SIGKILLed driver's record still in driver.lock, waits for it
    instead of naming the dead driver as the holder."""
    import fcntl
    import threading

    from asynctune.store.lock import DriverLock, is_driven

    path = tmp_path / "driver.lock"
    path.write_text(json.dumps({"pid": 999999, "host": "gone", "start_time": "then"}) + "\n")
    reader = os.open(path, os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH)
    threading.Timer(0.02, os.close, [reader]).start()
    lock = DriverLock.acquire(str(tmp_path))
    assert is_driven(str(tmp_path)) is True
    lock.release()
    assert is_driven(str(tmp_path)) is False
