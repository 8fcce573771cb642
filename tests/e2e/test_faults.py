"""Faults with real processes: a killed driver resumed, SIGTERM, corrupt directories."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import asynctune as at
from tests.helpers.driver_runs import (
    EXPERIMENT, iterations_of, kill_driver_after, start_driver, start_script, wait_for_results,
)

def test_killed_driver_resumes_with_every_result_exactly_once(tmp_path):
    driver = start_driver(tmp_path, "killed")
    experiment_dir = tmp_path / "results" / "killed"
    wait_for_results(experiment_dir, 14)
    workers = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    # The workers notice their driver is gone (their pipe closes) and end themselves.
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived the killed driver: {alive}"

    resumed = at.resume(str(experiment_dir), verbose=0)
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 6
    for trial_id, iterations in iterations_of(resumed).items():
        assert iterations == list(range(1, 11)), (trial_id, iterations)  # each once, none lost

    reference = at.run(_train_from(experiment_dir),
                       config={"x": at.uniform(0, 1), "pause": 0.0}, num_samples=6, max_concurrent_trials=2,
                       metric="score", mode="max", seed=3, storage_path=str(tmp_path / "reference"), verbose=0)
    assert resumed.best_config["x"] == reference.best_config["x"]
    assert resumed.best_result["score"] == pytest.approx(reference.best_result["score"])
    assert [t.config["x"] for t in resumed.trials] == [t.config["x"] for t in reference.trials]


def _train_from(experiment_dir):
    from asynctune.store.recovery import load_resume_state
    return load_resume_state(str(experiment_dir)).trainable


def test_sigterm_stops_cleanly_and_tells_how_to_resume(tmp_path):
    driver = start_driver(tmp_path, "termed", pause=0.1)
    experiment_dir = tmp_path / "results" / "termed"
    wait_for_results(experiment_dir, 4)
    workers = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGTERM)
    output, _ = driver.communicate(timeout=30)
    assert driver.returncode == 128 + signal.SIGTERM  # as a terminated process, not a crash
    assert f"asynctune resume {experiment_dir}" in output.decode()
    assert "Traceback" not in output.decode()  # the hint is the whole message
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive
    with open(experiment_dir / "experiment.json") as f:
        assert json.load(f)["status"] == "INTERRUPTED"
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert all(iterations == list(range(1, 11)) for iterations in iterations_of(resumed).values())


INSIDE_A_RUNNING_LOOP = textwrap.dedent("""
    import asyncio, sys, time
    import asynctune as at

    def train(config):
        for i in range(10):
            time.sleep(0.1)
            at.report(score=config["x"] * i, i=i + 1)

    async def cell():  # what a notebook cell does: a plain run() call while the kernel's loop runs
        at.run(train, config={"x": at.uniform(0, 1)}, num_samples=4, max_concurrent_trials=2,
               metric="score", mode="max", seed=3, storage_path=sys.argv[1], name=sys.argv[2], verbose=0)

    loop = asyncio.new_event_loop()  # no asyncio.Runner: SIGINT raises KeyboardInterrupt, as in a kernel
    try:
        loop.run_until_complete(cell())
    except KeyboardInterrupt:
        print("cell interrupted", flush=True)
        time.sleep(1.0)  # the kernel lives on; the experiment must not
""")


def test_an_interrupt_inside_a_running_loop_stops_the_experiment(tmp_path):
    driver = start_script(tmp_path / "notebook.py", INSIDE_A_RUNNING_LOOP, tmp_path / "results", "cell")
    experiment_dir = tmp_path / "results" / "cell"
    wait_for_results(experiment_dir, 3)
    workers = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGINT)
    time.sleep(0.8)  # the "kernel" still runs: by now the experiment has stopped
    assert driver.poll() is None
    assert not [t for t in psutil.Process(driver.pid).threads()][1:], "the experiment thread runs on"
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive
    output, _ = driver.communicate(timeout=30)
    assert "cell interrupted" in output.decode()
    assert f"asynctune resume {experiment_dir}" in output.decode()
    with open(experiment_dir / "experiment.json") as f:
        assert json.load(f)["status"] == "INTERRUPTED"
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert all(iterations == list(range(1, 11)) for iterations in iterations_of(resumed).values())


CUT_SHORT = EXPERIMENT.replace("    def train(config):\n", """    def train(config):
        import signal, threading
        if threading.current_thread() is threading.main_thread():  # a worker process, not a Dask thread
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a trainable that tidies up on SIGTERM
""").replace("verbose=1)", "verbose=1, executor=None if sys.argv[4] == 'local' else at.DaskExecutor(n_workers=2))")


@pytest.mark.timeout(300)  # a Dask cluster in the driver, then one more for the resume
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_trial_cut_short_by_the_interrupt_stays_resumable_whatever_it_answers(multiprocessing_resource_tracker,
                                                                                 tmp_path, executor):
    """Killed at Ctrl-C/SIGTERM, a trial may still answer: Dask's kill asks it to stop first (it
    ends "stopped"), a trainable's own SIGTERM handler raises SystemExit (an error). The kill
    caused either, so the trial stays resumable and finishes on resume, not TERMINATED or ERROR."""
    if executor == "dask":
        pytest.importorskip("distributed")
    driver = start_script(tmp_path / "experiment.py", CUT_SHORT, tmp_path / "results", "cut", 0.1, executor)
    experiment_dir = tmp_path / "results" / "cut"
    wait_for_results(experiment_dir, 4, timeout=120)
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=60)
    with open(experiment_dir / "experiment.json") as f:
        statuses = {t["trial_id"]: t["status"] for t in json.load(f)["trials"]}
    assert set(statuses.values()) <= {"PENDING", "FINISHED"}, (statuses, output.decode()[-2000:])
    assert "PENDING" in statuses.values()  # the trials that were running when it was interrupted
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 6
    assert all(iterations == list(range(1, 11)) for iterations in iterations_of(resumed).values())


def test_resuming_a_finished_experiment_says_so(tmp_path, capsys):
    def quick(config):
        at.report(score=1)

    done = at.run(quick, storage_path=str(tmp_path), name="done", verbose=0)
    again = at.resume(done.experiment_dir)
    assert "already finished" in capsys.readouterr().out
    assert len(again.trials) == 1 and again.trials[0].num_results == 1


def test_run_with_resume_true_continues_or_starts(tmp_path):
    def quick(config):
        at.report(score=config["x"])

    first = at.run(quick, config={"x": at.uniform(0, 1)}, num_samples=2, storage_path=str(tmp_path),
                   name="exp", resume=True, verbose=0, seed=1)
    assert len(first.trials) == 2
    second = at.run(quick, config={"x": at.uniform(0, 1)}, num_samples=2, storage_path=str(tmp_path),
                    name="exp", resume=True, verbose=0, seed=1)
    assert [t.config for t in second.trials] == [t.config for t in first.trials]
    with pytest.raises(ValueError, match="already holds an experiment; pass resume=True"):
        at.run(quick, storage_path=str(tmp_path), name="exp", verbose=0)


@pytest.mark.parametrize("damage", ["no directory", "no run spec", "garbage run spec"])
def test_resume_of_a_damaged_directory_is_a_clear_error(tmp_path, damage):
    target = tmp_path / "exp"
    if damage != "no directory":
        target.mkdir()
    if damage == "garbage run spec":
        from asynctune.store.signing import sign  # this user's, but garbage: unreadable, not foreign

        (target / "run_spec.pkl").write_bytes(sign(b"\x80\x04not a pickle"))
    message = {"no directory": "no such directory", "no run spec": "has no run_spec.pkl",
               "garbage run spec": "run_spec.pkl is unreadable"}[damage]
    with pytest.raises(ValueError, match=message):
        at.resume(str(target))


def test_half_written_journal_and_results_are_tolerated(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "torn", 8)
    with open(experiment_dir / "journal.jsonl", "a") as f:
        f.write('{"event": "status", "trial_id": "trial_0')  # torn mid-line
    with open(experiment_dir / "trial_00000" / "result.jsonl", "a") as f:
        f.write('{"score": 0.5, "i"')
    (experiment_dir / "experiment.json").write_text("{torn")
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert all(iterations == list(range(1, 11)) for iterations in iterations_of(resumed).values())


def test_scheduler_state_is_rebuilt_by_replay(tmp_path):
    """A scheduler that counts results sees, after resume, every result of the first session."""
    script = tmp_path / "driver.py"
    marker = tmp_path / "marker"
    script.write_text(textwrap.dedent(f"""
        import asynctune as at, sys
        from tests.helpers.driver_runs import counting_experiment
        counting_experiment({str(tmp_path / 'r')!r}, {str(marker)!r})
    """))
    subprocess.run([sys.executable, str(script)], timeout=60)
    scheduler_seen = _resume_counting(str(tmp_path / "r" / "counting"))
    assert scheduler_seen == 4  # 2 replayed (iterations 1, 2) + 2 new (3, 4)


def _resume_counting(experiment_dir):
    from asynctune.store.recovery import load_resume_state
    state = load_resume_state(experiment_dir)
    scheduler = state.run_kwargs["scheduler"]
    type(scheduler).seen = 0
    at.resume(experiment_dir, verbose=0)
    return type(scheduler).seen


def test_a_checkpoint_whose_result_was_never_recorded_is_not_restored(tmp_path):
    """The worker writes checkpoint k before sending result k: a driver killed in between must
    not resume from checkpoint k, or result k would be lost."""
    experiment_dir = kill_driver_after(tmp_path, "gap", 8)
    trial_dir = experiment_dir / "trial_00000"
    with open(trial_dir / "result.jsonl") as f:
        recorded = [json.loads(line) for line in f]
    last = recorded[-1]["i"]
    orphan = trial_dir / f"checkpoint_{last + 3:06d}"  # as if written just before the driver died
    orphan.mkdir(exist_ok=True)
    from asynctune.store.signing import sign

    (orphan / "checkpoint.pkl").write_bytes(sign(__import__("pickle").dumps({"i": last + 3})))
    (orphan / ".asynctune.json").write_text(json.dumps({"iteration": last + 3, "time_total_s": 1.0}))
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert all(iterations == list(range(1, 11)) for iterations in iterations_of(resumed).values())


def test_resume_is_the_function_whatever_was_imported_first():
    import asynctune.api  # noqa: F401  (imports asynctune.store.recovery)
    import asynctune.store.recovery  # noqa: F401

    assert callable(at.resume) and at.resume.__module__ == "asynctune.api"


KILLED_AT_THE_FIRST_TRIAL = textwrap.dedent("""
    import os, signal, sys
    import asynctune as at

    class KillsItsDriver(at.Searcher):
        \"\"\"SIGKILLs the driver while it adds its trials, once: the first is journaled by then.\"\"\"

        def suggest(self, trial_id):
            if trial_id == "trial_00001" and not os.path.exists(sys.argv[2]):
                open(sys.argv[2], "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            return {"x": 0.5}

    def train(config):
        at.report(score=config["x"])

    if __name__ == "__main__":
        at.run(train, search_alg=KillsItsDriver(), num_samples=3, metric="score", mode="max",
               storage_path=sys.argv[1], name="early", verbose=0)
""")


def test_a_driver_killed_as_it_adds_its_first_trials_leaves_an_experiment_every_reader_knows(tmp_path):
    """experiment.json is written before the first trial is journaled: a driver killed in between
    left trials that `asynctune ls` listed as FAILED AT START (0 trials) and that `asynctune
    resume`, `asynctune show` and ExperimentAnalysis refused as no experiment at all."""
    driver = start_script(tmp_path / "early.py", KILLED_AT_THE_FIRST_TRIAL, tmp_path / "results", tmp_path / "killed")
    driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL
    experiment_dir = tmp_path / "results" / "early"
    assert (experiment_dir / "trial_00000").is_dir()
    listed = subprocess.run(["asynctune", "ls", str(tmp_path / "results")], capture_output=True, text=True)
    assert "FAILED AT START" not in listed.stdout and "INTERRUPTED" in listed.stdout, listed.stdout
    resumed = subprocess.run(["asynctune", "resume", str(experiment_dir)], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    analysis = at.ExperimentAnalysis(str(experiment_dir))
    assert [(t.trial_id, t.status) for t in analysis.trials] == [
        (f"trial_{i:05d}", at.Status.TERMINATED) for i in range(3)]
    assert all(len(analysis.trial_results(t.trial_id)) == 1 for t in analysis.trials)


KILLED_WITH_A_STALE_SNAPSHOT = textwrap.dedent("""
    import json, os, signal, sys, time
    import asynctune as at

    def train(config):
        if config["n"] == 0:
            for i in range(3):
                at.report(score=float(i), i=i + 1)
            return
        for i in range(200):  # report until experiment.json, saved once a second, lags behind
            at.report(score=10.0 + i, i=i + 1)
            with open(os.path.join(os.path.dirname(at.get_trial_dir()), "experiment.json")) as f:
                saved = {t["trial_id"]: t for t in json.load(f)["trials"]}
            mine = saved.get(at.get_trial_id())
            if i >= 1 and (mine is None or mine["num_results"] < i + 1) and not os.path.exists(config["marker"]):
                open(config["marker"], "w").close()  # once: not the resume's driver
                os.kill(os.getppid(), signal.SIGKILL)  # the driver, with this result recorded
                time.sleep(5)

    if __name__ == "__main__":
        at.run(train, config={"n": at.grid_search([0, 1]), "marker": sys.argv[2]}, metric="score", mode="max",
               max_concurrent_trials=1,
               stop={"training_iteration": 1000},  # each report() waits until the driver recorded it
               storage_path=sys.argv[1], name="stale", verbose=0)
""")


def test_a_killed_drivers_experiment_reads_with_every_result_and_status_it_recorded(tmp_path):
    """experiment.json is saved at most once a second: after a SIGKILL it may lag the journal and
    the results. Readers (ExperimentAnalysis, `asynctune show`) showed that stale table: a
    finished trial as RUNNING, a newer trial not at all, and a best trial that was not the best."""
    driver = start_script(tmp_path / "stale.py", KILLED_WITH_A_STALE_SNAPSHOT, tmp_path / "results", tmp_path / "killed")
    driver.communicate(timeout=120)
    assert driver.returncode == -signal.SIGKILL
    experiment_dir = tmp_path / "results" / "stale"
    recorded = {p.parent.name: [json.loads(line)["i"] for line in p.read_text().splitlines()]
                for p in experiment_dir.glob("trial_*/result.jsonl")}
    analysis = at.ExperimentAnalysis(str(experiment_dir))
    assert analysis.status == "INTERRUPTED"
    assert [(t.trial_id, t.status) for t in analysis.trials] == [
        ("trial_00000", at.Status.TERMINATED), ("trial_00001", at.Status.RUNNING)]
    assert {t.trial_id: [r["i"] for r in analysis.trial_results(t.trial_id)] for t in analysis.trials} == recorded
    assert analysis.trials[1].num_results == len(recorded["trial_00001"]) >= 2
    assert analysis.best_trial.trial_id == "trial_00001"
    assert analysis.best_result["i"] == recorded["trial_00001"][-1]
    shown = subprocess.run(["asynctune", "show", str(experiment_dir), "--json"], capture_output=True, text=True)
    assert json.loads(shown.stdout)["best_result"]["i"] == recorded["trial_00001"][-1], shown.stderr
    # Reading changed nothing: the resume finds what the driver left.
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 2
