"""Workers that can never hang the driver (issue 29), with real worker processes: a worker
killed while processes it started hold copies of its pipes, a trial that ignores its stop,
a worker a trial changed, a corrupt or oversized frame, garbage on every descriptor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import asynctune as at
from tests.helpers.driver_runs import start_script


def _pids_alive(directory) -> list[int]:
    alive = []
    for name in os.listdir(directory):
        if name.endswith(".pids"):
            for pid in map(int, open(os.path.join(directory, name)).read().split()):
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        alive.append(pid)
                except psutil.NoSuchProcess:
                    pass
    for pid in alive:  # clean up after a failure
        os.kill(pid, signal.SIGKILL)
    return alive


# 1. A dead worker is an event of its own, not the last copy of its pipes closing ----------------

def _killed_with_children(config):
    if at.get_checkpoint() is None:  # first attempt: leave children holding every inherited fd, then die
        at.report(step=1, checkpoint={"step": 1})
        children = [subprocess.Popen(["sleep", "1000"], close_fds=False)
                    for _ in range(3)]
        children.append(subprocess.Popen(["sleep", "1000"], close_fds=False, start_new_session=True))
        os.system("sleep 1000 &")
        with open(os.path.join(config["dir"], f"{at.get_trial_id()}.pids"), "w") as f:
            f.write(" ".join(str(c.pid) for c in children))
        with open(os.path.join(config["dir"], f"{at.get_trial_id()}.killed"), "w") as f:
            f.write(str(time.time()))
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    at.report(step=2)


def test_a_killed_worker_fails_over_at_once_while_its_children_hold_its_pipes(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    began = time.monotonic()
    analysis = at.run(_killed_with_children, config={"dir": str(pids)}, num_samples=2, max_failures=1,
                      time_budget_s=60, storage_path=str(tmp_path), verbose=0, executor=at.LocalExecutor(cpus=2))
    took = time.monotonic() - began
    time.sleep(0.5)
    escaped = _pids_alive(pids)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2, [t.error for t in analysis.trials]
    assert [t.num_failures for t in analysis.trials] == [1, 1]
    assert all("SIGKILL" in t.error for t in analysis.trials)
    assert [[r["step"] for r in analysis.trial_results(t.trial_id)] for t in analysis.trials] == [[1, 2]] * 2
    assert took < 20, f"run() took {took:.1f}s: the dead workers were noticed late"
    assert escaped == [], "processes the dead worker's trial started outlived it"
    with open(os.path.join(analysis.experiment_dir, "journal.jsonl")) as f:
        retried = {e["trial_id"]: e["time"] for e in map(json.loads, f) if e["event"] == "retry"}
    for trial in analysis.trials:  # the kill is an event within a second or two, not when the children end
        killed = float((pids / f"{trial.trial_id}.killed").read_text())
        assert retried[trial.trial_id] - killed < 2.0, retried[trial.trial_id] - killed



_HOLDS_THE_GIL = textwrap.dedent("""
    import os, re, sys
    import asynctune as at

    def train(config):
        at.report(step=1)
        with open(config["pids"], "w") as f:
            f.write(str(os.getpid()))
        re.match(r"(a+)+$", "a" * 34 + "b")  # one C call that holds the GIL for minutes

    if __name__ == "__main__":
        at.run(train, config={"pids": sys.argv[2]}, storage_path=sys.argv[1], verbose=0)
""")


def test_a_killed_drivers_worker_ends_while_its_trial_holds_the_gil(tmp_path):
    # The worker's own watch is a thread: it cannot run while a C call holds the GIL, and before,
    # such a worker ran on after its driver was killed, until the call returned.
    pid_file = tmp_path / "worker.pid"
    driver = start_script(tmp_path / "driver.py", _HOLDS_THE_GIL, tmp_path / "results", pid_file)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and driver.poll() is None, driver.stdout.read().decode()
        time.sleep(0.05)
    worker = psutil.Process(int(pid_file.read_text()))
    time.sleep(0.5)  # into the C call
    driver.kill()
    driver.wait(timeout=10)
    killed = time.monotonic()
    try:
        worker.wait(timeout=10)
    except psutil.TimeoutExpired:
        worker.kill()
        raise AssertionError("the worker of a killed driver ran on while its trial held the GIL") from None
    assert time.monotonic() - killed < 5


_INHERITS_ORPHANS = textwrap.dedent("""
    import ctypes, subprocess, sys, time
    import psutil
    import asynctune as at

    def train(config):
        at.report(loss=config["x"])

    if __name__ == "__main__":
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # a child subreaper, as PID 1 in a container is
        mine = subprocess.Popen([sys.executable, "-c", "pass"])  # the script's own child: not ours to reap
        mine_pid = mine.pid
        for reuse in (True, False):
            at.run(train, config={"x": at.uniform(0, 1)}, num_samples=4, storage_path=sys.argv[1], verbose=0,
                   executor=at.LocalExecutor(cpus=2, reuse_workers=reuse))
        time.sleep(0.5)
        left = [(p.pid, p.name(), p.status()) for p in psutil.Process().children()]
        print("LEFT", [c for c in left if c[0] != mine_pid], "MINE", mine.wait())
""")


def test_a_driver_that_inherits_orphans_reaps_its_workers_watchdogs_and_nothing_else(tmp_path):
    # The watchdogs are orphaned by design; where the driver is PID 1 (a container without an init)
    # or a subreaper they become its children, and each ended one stayed a zombie of the driver's.
    driver = start_script(tmp_path / "driver.py", _INHERITS_ORPHANS, tmp_path / "results")
    out = driver.communicate(timeout=120)[0].decode()
    assert driver.returncode == 0, out
    assert "LEFT [] MINE 0" in out, out  # no zombie, and the script's own child's status is still its own


# 3. A trial told to stop that does not return is ended, and its place freed ---------------------

def _ignores_stop(config):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and SIGTERM too: only SIGKILL ends it
    try:
        for i in range(100):
            at.report(i=i + 1)
    finally:
        time.sleep(1000)  # blocks as it unwinds from the stop


def test_a_trial_that_ignores_its_stop_is_killed_and_its_place_freed(tmp_path):
    began = time.monotonic()
    analysis = at.run(_ignores_stop, config={"x": at.uniform(0, 1)}, num_samples=6, stop={"training_iteration": 2},
                      stop_grace_s=0.5, time_budget_s=90, storage_path=str(tmp_path), verbose=0,
                      executor=at.LocalExecutor(cpus=2, kill_grace_s=0.5))
    took = time.monotonic() - began
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 6, [t.error for t in analysis.trials]
    assert [t.num_failures for t in analysis.trials] == [0] * 6  # the stop stands: no failure, no retry
    assert [[r["i"] for r in analysis.trial_results(t.trial_id)] for t in analysis.trials] == [[1, 2]] * 6
    assert took < 45, f"6 stubborn trials on 2 places took {took:.1f}s"


class _PausesAtTwo(at.FIFOScheduler):
    def on_trial_result(self, trial, result):
        return at.PAUSE if result["training_iteration"] == 2 else at.CONTINUE


def _ignores_its_first_pause(config):
    checkpoint = at.get_checkpoint()
    start = checkpoint["i"] if checkpoint else 0
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        for i in range(start, 4):
            at.report(i=i + 1, checkpoint={"i": i + 1})
    finally:
        if start == 0:
            time.sleep(1000)


def test_a_trial_that_ignores_its_pause_is_killed_and_resumes_from_its_checkpoint(tmp_path):
    began = time.monotonic()
    analysis = at.run(_ignores_its_first_pause, config={"x": at.uniform(0, 1)}, num_samples=2,
                      scheduler=_PausesAtTwo(), stop_grace_s=0.5, time_budget_s=60, storage_path=str(tmp_path),
                      verbose=0, executor=at.LocalExecutor(cpus=2, kill_grace_s=0.5))
    assert time.monotonic() - began < 30
    with open(os.path.join(analysis.experiment_dir, "journal.jsonl")) as f:
        journal = [json.loads(line) for line in f]
    for trial in analysis.trials:
        statuses = [e["status"] for e in journal if e["trial_id"] == trial.trial_id]
        assert "PAUSED" in statuses and "ERROR" not in statuses, statuses  # the pause stands
        assert trial.status is at.Status.TERMINATED and trial.num_failures == 0
        assert [r["i"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3, 4]


def test_stop_grace_s_is_checked():
    with pytest.raises(ValueError, match="stop_grace_s"):
        at.run(_ignores_stop, stop_grace_s=-1, verbose=0)


# 5. A value that cannot be recorded is named where it is reported ------------------------------

def _deep(levels):
    value = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def _circular():
    value = {"x": 1.0}
    value["self"] = value
    return value


def _reports(config):
    class Mine:  # the trainable's own class, sent by value: it cannot travel back
        pass

    import threading

    odd = {"tuple_key": {("a", "b"): 1.0}, "circular": {"nested": _circular()}, "deep": _deep(5000),
           "lock": {"inner": [1, threading.Lock()]}, "mine": Mine()}[config["case"]]
    at.report(loss=1.0, extra=odd)


@pytest.mark.parametrize("case, named", [
    ("tuple_key", "result['extra'] has the key ('a', 'b'), a tuple"),
    ("circular", "result['extra']['nested']['self'] contains itself"),
    ("deep", "result['extra']['a']['a']"),
    ("lock", "result['extra']['inner'][1] is a _thread.lock"),
    ("mine", "result['extra'] is a tests.e2e.test_worker_faults._reports.<locals>.Mine"),
])
def test_a_value_that_cannot_be_recorded_fails_its_trial_naming_it(tmp_path, case, named):
    analysis = at.run(_reports, config={"case": case}, raise_on_failed_trial="never", storage_path=str(tmp_path),
                      verbose=0)
    trial = analysis.trials[0]
    assert trial.status is at.Status.ERROR
    assert named in trial.error, trial.error
    assert "UnrecordableResult" in trial.error and "report numbers" in trial.error



def _too_large(config):
    at.report(pid=os.getpid())
    if config["case"] == "result":
        at.report(loss=1.0, blob="x" * (65 << 20))  # over MAX_FRAME_BYTES (64 MiB) pickled
    elif config["case"] == "exception":
        raise ValueError("x" * (65 << 20))


def test_a_result_or_error_too_large_to_send_fails_its_trial_naming_it_and_keeps_the_worker(tmp_path):
    # Before, the worker sent the frame, the driver took it for a damaged stream and ended the worker:
    # "the worker's protocol stream was damaged: it sent a frame of 68157641 bytes, over the limit".
    analysis = at.run(_too_large, config={"case": at.grid_search(["result", "exception", "none"])},
                      raise_on_failed_trial="never", storage_path=str(tmp_path), verbose=0,
                      executor=at.LocalExecutor(cpus=1))
    result, exception, fine = analysis.trials
    assert result.status is at.Status.ERROR and exception.status is at.Status.ERROR
    assert result.error.startswith("UnrecordableResult: report(): the result is too large to send to the driver: "
                                   "it pickles to 65.0 MiB, over the 64 MiB"), result.error
    assert "result['blob'] is 65.0 MiB pickled; keep large data in a checkpoint" in result.error
    assert exception.error.startswith("ValueError: xxx") and "characters left out" in exception.error
    assert len(exception.error) < 2 << 20
    assert "protocol stream was damaged" not in result.error + exception.error
    assert fine.status is at.Status.TERMINATED
    pids = {t.trial_id: analysis.trial_results(t.trial_id)[0]["pid"] for t in analysis.trials}
    assert len(set(pids.values())) == 1, pids  # one worker ran all three: neither failure ended it


def _reports_metric(config):
    at.report(loss=config["value"]())


@pytest.mark.parametrize("make, kind", [(lambda: __import__("decimal").Decimal("0.5"), "decimal.Decimal"),
                                        (lambda: __import__("datetime").datetime(2026, 1, 1), "datetime.datetime")])
def test_a_metric_that_is_not_a_number_is_refused_at_the_first_result(tmp_path, make, kind):
    with pytest.raises(ValueError, match=rf"metric='loss' in trial_0000\d's first result is a {kind}"):
        at.run(_reports_metric, config={"value": make}, metric="loss", mode="min", num_samples=3,
               storage_path=str(tmp_path), verbose=0)


# 6. A trial that never reports is named; an experiment where none did raises -------------------

def _reports_elsewhere(config):
    from ray import tune  # a script half-migrated from Ray Tune

    tune.report(loss=config["x"])


def _reports_sometimes(config):
    if config["x"] > 0:
        at.report(loss=config["x"])


def test_an_experiment_where_no_trial_reported_raises_naming_the_other_report(tmp_path, monkeypatch, caplog):
    # A stand-in for Ray (not installed here): a package `ray` with a `tune.report`.
    fake = tmp_path / "site" / "ray"
    (fake / "tune").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "tune" / "__init__.py").write_text("def report(**metrics):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(at.NothingReported, match=r"none of the 2 trial\(s\) reported a result: asynctune.report\(...\) "
                                                 r"was never called in the trainable; the trainable imported "
                                                 r"ray.tune.report") as caught:
        at.run(_reports_elsewhere, config={"x": at.uniform(0, 1)}, num_samples=2, storage_path=str(tmp_path / "r"),
               verbose=0)
    assert caught.value.foreign_reports == ["ray.tune.report"]
    assert [t.status for t in caught.value.analysis.trials] == [at.Status.TERMINATED] * 2
    assert "trial_00000 returned without reporting a result" in caplog.text


def _returns_its_metric(config):
    return {"loss": config["x"]}  # Optuna's and Ray's quick-start habit: returned, not reported


def test_an_experiment_whose_trainable_returns_its_metric_says_to_report_it(tmp_path, caplog):
    with pytest.raises(at.NothingReported, match=r"it returned a dict: a return value is not a result; report it"):
        at.run(_returns_its_metric, config={"x": at.uniform(0, 1)}, num_samples=2, storage_path=str(tmp_path),
               verbose=0)
    assert "trial_00000 returned without reporting a result: its trainable never called asynctune.report(...) " \
           "(it returned a dict: " in caplog.text


def test_a_trial_that_returns_without_reporting_is_named(tmp_path, caplog):
    analysis = at.run(_reports_sometimes, config={"x": at.grid_search([0, 1])}, storage_path=str(tmp_path),
                      verbose=0)
    assert [t.num_results for t in analysis.trials] == [0, 1]
    assert "trial_00000 returned without reporting a result: its trainable never called asynctune.report" \
        in caplog.text
    assert "trial_00001 returned without" not in caplog.text


# 2. A corrupt or oversized frame ends that worker and fails its trial, naming the cause, once ---

def _damages_its_stream(config):
    from asynctune.worker import session

    at.report(step=1)
    os.write(session._current.channel.write_fd, config["garbage"])  # on the protocol's own descriptor
    at.report(step=2)
    time.sleep(1000)


@pytest.mark.parametrize("garbage, named", [
    (b"\x00\x00\x00\x10" + b"not a pickle at all", "a corrupt frame (UnpicklingError"),
    (b"\xff\xff\xff\xff" + b"0123456789abcdef", "a frame of 4294967295 bytes, over the limit"),
    (b"\x00\x00\x00\x05" + b"\x80\x05K\x07.", "a frame that is no message of the protocol: 7"),  # pickle of 7
])
def test_a_damaged_stream_ends_its_worker_and_fails_the_trial_once(tmp_path, caplog, garbage, named):
    began = time.monotonic()
    analysis = at.run(_damages_its_stream, config={"garbage": garbage}, raise_on_failed_trial="never",
                      time_budget_s=60, storage_path=str(tmp_path), verbose=0)
    assert time.monotonic() - began < 20
    trial = analysis.trials[0]
    assert trial.status is at.Status.ERROR
    assert trial.error.startswith("the worker's protocol stream was damaged: it sent " + named), trial.error
    assert [r["step"] for r in analysis.trial_results(trial.trial_id)] == [1]
    assert caplog.text.count("local worker sent a") == 1, caplog.text  # named once, not per later chunk
    assert "Traceback" not in caplog.text



def _closes_every_descriptor(config):
    at.report(step=1)
    if config["close"] in ("close", "reopen"):
        os.closerange(3, 4096)  # as a library that closes every descriptor it did not open
        if config["close"] == "reopen":  # and its own files take the freed numbers
            files = [open(os.path.join(at.get_trial_dir(), f"f{i}"), "w") for i in range(4)]  # noqa: F841
    elif config["close"] == "devnull":  # /dev/null put on the worker's descriptor to the driver
        from asynctune.worker import session

        os.dup2(os.open(os.devnull, os.O_WRONLY), session._current.channel.write_fd)
    at.report(step=2)


@pytest.mark.parametrize("close", ["close", "reopen", "devnull"])
def test_a_trial_that_closes_the_workers_descriptors_fails_saying_so(tmp_path, close):
    # Before: "the worker exited with code 1", and a traceback of the worker itself in error.txt;
    # with /dev/null in place, the trial waited for an answer to a result the driver never got.
    analysis = at.run(_closes_every_descriptor, config={"close": at.grid_search([close, None])},
                      stop={"training_iteration": 3}, raise_on_failed_trial="never", time_budget_s=20,
                      storage_path=str(tmp_path), verbose=0, executor=at.LocalExecutor(cpus=1))
    closer, other = analysis.trials
    assert closer.status is at.Status.ERROR
    assert closer.error == ("the worker exited with code 87: its trial closed the worker's descriptors to the driver "
                            "(os.closerange(3, ...), or a library that closes every descriptor it did not open)")
    assert [r["step"] for r in analysis.trial_results(closer.trial_id)] == [1]
    assert other.status is at.Status.TERMINATED and other.num_results == 2



def _forks(config):
    at.report(step=1)
    child = os.fork()
    if child == 0:  # the child leaves as a careless script's does, not with os._exit()
        if config["child"] == "exits":
            sys.exit(0)
        if config["child"] == "raises":
            raise ValueError("the child's own error")
        at.report(step=2, child=True)  # "returns": reports, then comes back out of the trainable
        return
    os.waitpid(child, 0)
    at.report(step=2, child=False)
    at.report(step=3)


@pytest.mark.parametrize("child", ["exits", "raises", "returns"])
def test_a_child_the_trial_forked_never_speaks_for_the_trial(tmp_path, child):
    # Before, the child came back into the worker's code: its SystemExit or error was sent as the
    # trial's (ERROR, results 2 and 3 lost), or its report() recorded iteration 2 twice.
    analysis = at.run(_forks, config={"child": child}, raise_on_failed_trial="never", time_budget_s=60,
                      storage_path=str(tmp_path), verbose=0, executor=at.LocalExecutor(cpus=1))
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 0, trial.error
    results = analysis.trial_results(trial.trial_id)
    assert [(r["training_iteration"], r["step"], r.get("child")) for r in results] == \
        [(1, 1, None), (2, 2, False), (3, 3, None)]
    if child == "returns":
        with open(os.path.join(trial.path, "stderr.txt")) as f:
            assert "report() was called in a process the trial forked" in f.read()


# 7. Garbage on every descriptor is named as what it is ------------------------------------------

def _writes_everywhere(config):
    at.report(step=1)
    for fd in range(64):
        try:
            os.write(fd, b"\x00\x00\x00\x08garbage!" * 4)
        except OSError:
            pass
    at.report(step=2)


def test_garbage_on_every_descriptor_is_no_oom_kill_and_no_fatal_transport_error(tmp_path, caplog, capfd):
    analysis = at.run(_writes_everywhere, raise_on_failed_trial="never", time_budget_s=60,
                      storage_path=str(tmp_path), verbose=0)
    trial = analysis.trials[0]
    assert trial.status is at.Status.ERROR
    assert "protocol stream was damaged" in trial.error and "a corrupt frame" in trial.error, trial.error
    assert "SIGKILL" not in trial.error and "OOM" not in trial.error
    out, err = capfd.readouterr()
    assert "Fatal error on transport" not in out + err + caplog.text


# 4. A worker is reused only as it was found ----------------------------------------------------

def _changes_its_worker(config):
    import resource

    seen = {"cwd": os.getcwd() == config["cwd"], "env": "ASYNCTUNE_TEST_LEFT" not in os.environ,
            "umask": os.umask(0o077) == 0o077, "signal": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            "rlimit": resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY}
    try:
        bytearray(64 * 1024 * 1024)  # fails under an RLIMIT_AS an earlier trial left
        seen["memory"] = True
    except MemoryError:
        seen["memory"] = False
    at.report(pid=os.getpid(), clean=all(seen.values()), seen=seen)
    change = config["change"]
    if change == "rlimit":
        import psutil

        limit = psutil.Process().memory_info().vms + 16 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    elif change == "cwd":
        os.chdir("/")
    elif change == "env":
        os.environ["ASYNCTUNE_TEST_LEFT"] = "1"
    elif change == "signal":
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    elif change == "umask":
        os.umask(0o000)


def test_a_worker_a_trial_changed_is_retired_and_a_clean_one_reused(tmp_path):
    changes = ["rlimit", "none", "cwd", "none", "env", "none", "signal", "none", "umask", "none", "none"]
    analysis = at.run(_changes_its_worker, config={"change": at.grid_search(changes), "cwd": os.getcwd()},
                      storage_path=str(tmp_path), verbose=0, executor=at.LocalExecutor(cpus=1))
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * len(changes), \
        [t.error for t in analysis.trials]
    seen = [t.last_result for t in analysis.trials]
    assert all(r["clean"] for r in seen), [r["seen"] for r in seen if not r["clean"]]
    pids = [r["pid"] for r in seen]
    for i, change in enumerate(changes[:-1]):  # after a change, a fresh worker; after none, the same one
        assert (pids[i + 1] != pids[i]) == (change != "none"), (i, change, pids)


def _leaves_a_reporting_thread(config):
    import threading

    trial_id = at.get_trial_id()
    if config["leak"]:  # a background reporter the trainable never stops
        def report_forever():
            while True:
                time.sleep(0.02)
                try:
                    at.report(step=-1, by=trial_id)
                except Exception:
                    pass

        threading.Thread(target=report_forever, daemon=True).start()
    for step in range(1, 6):
        time.sleep(0.03)
        at.report(step=step, by=trial_id, pid=os.getpid())


def test_a_thread_an_earlier_trial_left_never_reports_into_the_next_and_its_worker_is_retired(tmp_path):
    # Before, the reused worker's leaked thread reported into the next trial's session: trial_00001's
    # result.jsonl held trial_00000's results, and its best result could be another config's.
    analysis = at.run(_leaves_a_reporting_thread, config={"leak": at.grid_search([True, False, False])},
                      storage_path=str(tmp_path), verbose=0, executor=at.LocalExecutor(cpus=1))
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 3, [t.error for t in analysis.trials]
    for trial in analysis.trials[1:]:
        results = analysis.trial_results(trial.trial_id)
        assert [(r["step"], r["by"]) for r in results] == [(s, trial.trial_id) for s in range(1, 6)], results
    pid = {t.trial_id: analysis.trial_results(t.trial_id)[-1]["pid"] for t in analysis.trials}
    assert pid["trial_00001"] == pid["trial_00000"]  # reused: the thread was there
    assert pid["trial_00002"] != pid["trial_00001"]  # then retired, and the thread ended with it
