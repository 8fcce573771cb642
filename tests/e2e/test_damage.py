"""Damage with real processes and files (issue 15): torn lines, values JSON cannot hold, configs
that are not plain JSON, damaged experiment directories, processes that escape a trial."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

import asynctune as at
from asynctune.analysis.experiment import ExperimentAnalysis

from tests.helpers.driver_runs import iterations_of, kill_driver_after, start_driver, start_script, wait_for_results


def _strict_lines(path):
    """Every line of a .jsonl file, parsed as strict JSON (bare NaN/Infinity are errors)."""
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    with open(path) as f:
        return [json.loads(line, parse_constant=refuse) for line in f]


def _trial_statuses(experiment_dir):
    """trial_id -> last status in the journal."""
    statuses = {}
    for event in _strict_lines(experiment_dir / "journal.jsonl"):
        statuses[event["trial_id"]] = event["status"]
    return statuses


def _assert_every_result_once(resumed, experiment_dir, trials=6):
    assert sorted(t.trial_id for t in resumed.trials) == [f"trial_{i:05d}" for i in range(trials)]
    assert sorted(p.name for p in experiment_dir.iterdir() if p.name.startswith("trial_")) == \
        [f"trial_{i:05d}" for i in range(trials)]
    for trial_id, iterations in iterations_of(resumed).items():
        assert iterations == list(range(1, 11)), (trial_id, iterations)
    for trial in resumed.trials:
        lines = _strict_lines(os.path.join(trial.path, "result.jsonl"))  # nothing glued, nothing invalid
        assert [r["training_iteration"] for r in lines] == list(range(1, 11))
        assert {r["trial_id"] for r in lines} == {trial.trial_id}


# 1. Torn last lines ------------------------------------------------------------------------------

def test_a_torn_last_line_is_never_glued_to_the_next(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "torn", 8)
    statuses = _trial_statuses(experiment_dir)
    # A running trial with a checkpoint at iteration 3: the driver died while writing result 4.
    trial_dir = next(experiment_dir / t for t, s in sorted(statuses.items())
                     if s == "RUNNING" and len(_strict_lines(experiment_dir / t / "result.jsonl")) >= 4)
    lines = (trial_dir / "result.jsonl").read_text().splitlines(keepends=True)
    torn = lines[3][: len(lines[3]) // 2]
    (trial_dir / "result.jsonl").write_text("".join(lines[:3]) + torn)
    journal = (experiment_dir / "journal.jsonl").read_bytes()
    (experiment_dir / "journal.jsonl").write_bytes(journal[:-20])  # torn mid-line too

    resumed = at.resume(str(experiment_dir), verbose=0)

    _assert_every_result_once(resumed, experiment_dir)
    _strict_lines(experiment_dir / "journal.jsonl")  # every event on its own line
    assert (trial_dir / "result.jsonl.torn").read_text() == torn + "\n"  # kept, not lost
    assert (experiment_dir / "journal.jsonl.torn").read_bytes() == journal[journal.rindex(b"\n", 0, -20) + 1:-20] + b"\n"
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 6


# 2. Values JSON cannot hold ----------------------------------------------------------------------

def _odd_values(config):
    if config["odd"]:
        at.report(loss=10**400)
        at.report(loss=float("nan"))
        at.report(loss=float("-inf"), other=np.float32("inf"))
    at.report(loss=config["final"])


def test_huge_and_non_finite_values_are_recorded_as_valid_json(tmp_path, caplog):
    analysis = at.run(_odd_values, config={"odd": at.grid_search([True, False]), "final": 0.5},
                      metric="loss", mode="min", storage_path=str(tmp_path), name="odd", verbose=0)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
    odd = analysis.trials[0]
    lines = _strict_lines(os.path.join(odd.path, "result.jsonl"))
    assert [r["loss"] for r in lines] == [10**400, None, None, 0.5]  # NaN and infinities as null
    assert lines[2]["other"] is None
    _strict_lines(os.path.join(analysis.experiment_dir, "journal.jsonl"))
    assert analysis.best_config["odd"] is True and analysis.best_result["loss"] == 0.5
    later = ExperimentAnalysis(analysis.experiment_dir)
    assert later.best_config["odd"] is True
    frame = later.dataframe()
    assert len(frame) == 2
    assert "writing failed" not in caplog.text  # TensorBoard skips the value a float cannot hold


def test_old_files_with_bare_nan_still_read(tmp_path):
    analysis = at.run(_odd_values, config={"odd": False, "final": 0.25}, metric="loss", mode="min",
                      storage_path=str(tmp_path), name="old", verbose=0)
    path = os.path.join(analysis.trials[0].path, "result.jsonl")
    with open(path) as f:
        line = json.loads(f.readline())
    with open(path, "w") as f:  # as an older asynctune wrote it
        f.write(json.dumps({**line, "loss": float("nan"), "training_iteration": 1}) + "\n")
        f.write(json.dumps({**line, "training_iteration": 2}) + "\n")
    results = ExperimentAnalysis(analysis.experiment_dir).trial_results(analysis.trials[0].trial_id)
    assert math.isnan(results[0]["loss"]) and results[1]["loss"] == 0.25


# 3. Configs that are not plain JSON ---------------------------------------------------------------

def test_a_class_from_the_users_script_reaches_the_trial(tmp_path):
    class Point:  # a local class: plain pickle cannot send it, cloudpickle can
        def __init__(self, x):
            self.x = x

    def train(config):
        assert type(config["point"]).__name__ == "Point", type(config["point"])
        assert isinstance(config["array"], np.ndarray), type(config["array"])
        at.report(score=config["point"].x + float(config["array"].sum()))

    analysis = at.run(train, config={"point": Point(2), "array": np.arange(3.0)}, metric="score", mode="max",
                      storage_path=str(tmp_path), verbose=0)
    assert analysis.trials[0].status is at.Status.TERMINATED, analysis.trials[0].error
    assert analysis.best_result["score"] == 5.0
    params = os.path.join(analysis.trials[0].path, "params.pkl")
    assert os.stat(params).st_mode & 0o777 == 0o600


TYPED_EXPERIMENT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import asynctune as at

    class Scale:  # defined in __main__: only cloudpickle can send it to a worker
        def __init__(self, factor):
            self.factor = factor

    def train(config):
        if not isinstance(config["scale"], Scale) or not isinstance(config["weights"], np.ndarray):
            raise TypeError(f"config lost its types: {config!r}")
        checkpoint = at.get_checkpoint()
        start = checkpoint["i"] if checkpoint else 0
        for i in range(start, 10):
            time.sleep(0.05)
            at.report(score=config["scale"].factor * float(config["weights"].sum()) * (i + 1), i=i + 1,
                      checkpoint={"i": i + 1} if (i + 1) % 3 == 0 else None)

    if __name__ == "__main__":
        at.run(train, config={"scale": Scale(2.0), "weights": np.array([0.5, 0.25]), "x": at.uniform(0, 1)},
               num_samples=4, max_concurrent_trials=2, metric="score", mode="max", seed=3,
               storage_path=sys.argv[1], name=sys.argv[2], verbose=0)
""")


def test_configs_keep_their_types_after_a_resume(tmp_path):
    driver = start_script(tmp_path / "typed.py", TYPED_EXPERIMENT, tmp_path / "results", "typed")
    experiment_dir = tmp_path / "results" / "typed"
    try:
        wait_for_results(experiment_dir, 6)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
    time.sleep(0.5)
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 4, [t.error for t in resumed.trials]
    assert all(iterations == list(range(1, 11)) for iterations in iterations_of(resumed).values())
    assert all(isinstance(t.config["weights"], np.ndarray) for t in resumed.trials)


def _mutating(config):
    assert type(config["scale"]).__name__ == "Scale" and isinstance(config["weights"], np.ndarray), config
    checkpoint = at.get_checkpoint()
    for i in range(checkpoint["i"] if checkpoint else 0, 8):
        at.report(score=config["lr"] * config["scale"].factor, checkpoint={"i": i + 1})


def test_mutated_configs_keep_their_types(tmp_path):
    class Scale:
        def __init__(self, factor):
            self.factor = factor

    pbt = at.PopulationBasedTraining(perturbation_interval=2, hyperparam_mutations={"lr": at.uniform(0.1, 1.0)},
                                     quantile_fraction=0.5, seed=1)
    analysis = at.run(_mutating, config={"scale": Scale(3.0), "weights": np.ones(2), "lr": at.uniform(0.1, 1.0)},
                      num_samples=4, scheduler=pbt, metric="score", mode="max", storage_path=str(tmp_path),
                      verbose=0, seed=1)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 4, [t.error for t in analysis.trials]
    assert any(t.lineage for t in analysis.trials)  # some trial was mutated


# 4. Damaged experiment directories ---------------------------------------------------------------

def test_a_deleted_journal_is_rebuilt_from_the_trial_directories(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "nojournal", 14)
    os.unlink(experiment_dir / "journal.jsonl")
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)


def test_a_journal_cut_in_the_middle_reuses_no_trial_id(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "cut", 24)
    events = (experiment_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    first_of_2 = next(i for i, line in enumerate(events) if '"trial_00002"' in line)
    (experiment_dir / "journal.jsonl").write_text("".join(events[:first_of_2]))
    (experiment_dir / "experiment.json").unlink()  # and no snapshot either
    configs = {p.parent.name: json.loads(p.read_text()) for p in experiment_dir.glob("trial_*/params.json")}
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)
    for trial in resumed.trials:
        if trial.trial_id in configs:  # the config it started with, never another
            assert trial.config == configs[trial.trial_id]


def test_the_journal_holds_a_config_once_and_a_lost_one_is_a_clear_error(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "configonce", 6)
    events = [json.loads(line) for line in (experiment_dir / "journal.jsonl").read_text().splitlines()]
    with_config = [(e["trial_id"], e["event"]) for e in events if "config" in e]
    assert with_config == [(t, "added") for t in dict.fromkeys(e["trial_id"] for e in events)]  # once a trial
    assert len(events) > len(with_config)  # its status lines carry no config
    # The line that held trial_00000's config is gone, and so are its params files: nothing is guessed.
    kept = [line for line, e in zip((experiment_dir / "journal.jsonl").read_text().splitlines(keepends=True), events)
            if (e["trial_id"], e["event"]) != ("trial_00000", "added")]
    (experiment_dir / "journal.jsonl").write_text("".join(kept))
    for name in ("params.json", "params.pkl"):
        if (experiment_dir / "trial_00000" / name).exists():
            os.unlink(experiment_dir / "trial_00000" / name)
    with pytest.raises(at.ExperimentDamaged, match="trial_00000 has neither a readable params.pkl nor params.json"):
        at.resume(str(experiment_dir), verbose=0)


def test_garbage_lines_in_results_are_moved_aside(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "garbage", 8)
    path = experiment_dir / "trial_00000" / "result.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    garbage = ["not json at all\n", "[1, 2]\n", '{"training_iteration": "x"}\n']
    path.write_text("".join(lines[:1] + garbage + lines[1:]))
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)
    assert (experiment_dir / "trial_00000" / "result.jsonl.damaged").read_text() == "".join(garbage)


def test_a_corrupt_searcher_state_is_a_clear_error(tmp_path):
    """Where the state is read: a searcher that is not `replayable` (the default one is rebuilt
    by replaying the recorded trials, below, and never reads it)."""
    from asynctune.store.recovery import restore_searcher
    from asynctune.store.signing import sign  # signed by this user, but torn: damaged, not foreign

    (tmp_path / "searcher_state.pkl").write_bytes(sign(pickle.dumps({"x": 1})[:-5]))
    with pytest.raises(at.ExperimentDamaged, match="searcher_state.pkl is unreadable .* move it away"):
        restore_searcher(at.TPESearch(), str(tmp_path))


def test_the_default_searcher_resumes_where_it_was_without_its_state_file(tmp_path):
    """Its state is written only at the end: a killed driver leaves none, or an old or damaged
    one, and the resume rebuilds it exactly from the journal: the configs of an uninterrupted run."""
    from asynctune.store.signing import sign

    (tmp_path / "whole").mkdir()
    uninterrupted = kill_driver_after(tmp_path / "whole", "searcher", 60)  # every result: it ran to its end
    experiment_dir = kill_driver_after(tmp_path, "searcher", 4)
    (experiment_dir / "searcher_state.pkl").write_bytes(sign(pickle.dumps({"x": 1})[:-5]))
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)

    def configs(directory):
        return {p.parent.name: json.loads(p.read_text()) for p in directory.glob("trial_*/params.json")}

    assert configs(experiment_dir) == configs(uninterrupted)  # none proposed twice, none skipped
    assert {t.trial_id: t.config for t in resumed.trials} == configs(uninterrupted)


def test_a_trial_being_added_when_the_driver_died_starts_afresh(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "adding", 8)
    last = max(int(p.name[6:]) for p in experiment_dir.glob("trial_*"))
    added = f"trial_{last + 1:05d}"
    (experiment_dir / added).mkdir()  # made, but killed before its params were written
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)


@pytest.mark.parametrize("meta", ["[]", "null", '{"iteration": "three"}', '{"iteration": 3, "time_total_s": [1]}'])
def test_a_checkpoint_with_damaged_metadata_is_never_restored(tmp_path, meta):
    """A checkpoint's .asynctune.json that is JSON but not its metadata is damage: that checkpoint
    is passed over (as one without the file), and the trial restarts from an older one or from
    scratch, reporting every result once."""
    experiment_dir = kill_driver_after(tmp_path, "badmeta", 8)
    damaged = sorted(experiment_dir.glob("trial_*/checkpoint_*/.asynctune.json"))
    assert damaged
    for path in damaged:
        path.write_text(meta)
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)


def test_a_progress_csv_that_is_not_text_is_moved_aside(tmp_path):
    """progress.csv is a convenience copy: bytes that are not UTF-8 in it (a bad disk, a binary
    written over it) never stop a resume; the file starts again and the damage is kept."""
    driver = start_driver(tmp_path, "badcsv")
    experiment_dir = tmp_path / "results" / "badcsv"
    wait_for_results(experiment_dir, 8)
    deadline = time.time() + 30
    while not list(experiment_dir.glob("trial_*/progress.csv")) and time.time() < deadline:
        time.sleep(0.05)  # written twice a second
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    garbage = b"\xff\xfe\x00garbage\n"
    damaged = sorted(experiment_dir.glob("trial_*/progress.csv"))
    assert damaged
    for path in damaged:
        path.write_bytes(garbage + path.read_bytes())
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)
    for path in damaged:
        assert path.with_name("progress.csv.damaged").read_bytes().startswith(garbage)
        rows = path.read_text().splitlines()  # text again, from a header on
        assert rows[0].split(",")[:2] == ["score", "i"]


@pytest.mark.parametrize("copied", ["cut short", "missing"])
def test_a_half_copied_checkpoint_is_never_restored(tmp_path, copied):
    """A copy of an experiment that stopped part way (cp -r, rsync or an archive interrupted: a
    checkpoint's metadata copied, its data cut short or not yet there) resumes from the newest
    checkpoint that is whole, and every result comes once."""
    import shutil

    original = kill_driver_after(tmp_path, "tocopy", 14)
    experiment_dir = tmp_path / "copy" / "tocopy"
    shutil.copytree(original, experiment_dir)
    cut = []
    for trial_dir in sorted(experiment_dir.glob("trial_*")):
        newest = sorted(trial_dir.glob("checkpoint_*"))
        if newest and len(_strict_lines(trial_dir / "result.jsonl")) < 10:  # it will run again
            data = newest[-1] / "checkpoint.pkl"
            if copied == "missing":
                data.unlink()
            else:
                data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
            cut.append((trial_dir, int(newest[-2].name[11:]) if len(newest) > 1 else 0))
    assert cut, "no running trial had a checkpoint: the test proves nothing"
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 6
    for trial_dir, whole in cut:  # restarted from the checkpoint before the cut one, not from scratch
        rewound = _strict_lines(trial_dir / "result.rewound.jsonl")
        assert rewound[0]["training_iteration"] == whole + 1, (trial_dir.name, whole, rewound)


def test_a_trial_directory_without_config_is_a_clear_error(tmp_path):
    experiment_dir = kill_driver_after(tmp_path, "noparams", 4)
    os.unlink(experiment_dir / "journal.jsonl")
    trial = next(p for p in sorted(experiment_dir.glob("trial_*")) if (p / "result.jsonl").stat().st_size)
    for name in ("params.json", "params.pkl"):  # a trial that reported: its results have no config left
        if (trial / name).exists():  # params.pkl only where JSON would lose the config's types
            os.unlink(trial / name)
    with pytest.raises(at.ExperimentDamaged, match=f"{trial.name} has neither a readable params.pkl nor params.json"):
        at.resume(str(experiment_dir), verbose=0)


def test_params_pkl_only_where_json_would_lose_the_types(tmp_path):
    from asynctune.store.layout import read_params, write_params

    write_params(str(tmp_path), {"lr": 0.1, "layers": [64, 64], "name": "mlp", "opt": {"beta": 0.9}})
    assert not (tmp_path / "params.pkl").exists()
    write_params(str(tmp_path), {"shape": (3, 4), "scale": np.float32(0.5)})
    assert (tmp_path / "params.pkl").exists() and read_params(str(tmp_path))["shape"] == (3, 4)
    write_params(str(tmp_path), {"lr": 0.2})  # a mutation back to a plain config
    assert not (tmp_path / "params.pkl").exists() and read_params(str(tmp_path)) == {"lr": 0.2}


# 5. Processes that escape a trial ----------------------------------------------------------------

_DOUBLE_FORK = ("import subprocess; print(subprocess.Popen(['sleep', '1000'], start_new_session=True, "
                "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")


def _escaping(config):
    for earlier in _alive_pids(config["dir"]):  # an earlier trial in this worker left it running
        raise AssertionError(f"process {earlier} of an earlier trial is still running")
    new_session = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    orphan = int(subprocess.run([sys.executable, "-c", _DOUBLE_FORK], capture_output=True, text=True).stdout)
    with open(os.path.join(config["dir"], f"{at.get_trial_id()}.pids"), "w") as f:
        f.write(f"{new_session.pid} {orphan}")
    for i in range(config["steps"]):
        at.report(i=i + 1)
        time.sleep(0.05)


def _alive_pids(directory):
    pids = [int(p) for name in os.listdir(directory) if name.endswith(".pids")
            for p in open(os.path.join(directory, name)).read().split()]
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _escaped(directory):
    assert any(name.endswith(".pids") for name in os.listdir(directory))
    alive = _alive_pids(directory)
    for pid in alive:  # clean up after a failure
        os.kill(pid, signal.SIGKILL)
    return alive


@pytest.mark.parametrize("end", ["finished", "stopped"])
def test_processes_a_trial_started_end_with_it(tmp_path, end):
    pids = tmp_path / "pids"
    pids.mkdir()
    stop = {"training_iteration": 2} if end == "stopped" else None
    analysis = at.run(_escaping, config={"dir": str(pids), "steps": 1 if end == "finished" else 100},
                      num_samples=3, stop=stop, storage_path=str(tmp_path), verbose=0,
                      executor=at.LocalExecutor(cpus=1))  # one worker, reused: the trial's end must end them
    escaped = _escaped(pids)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 3, [t.error for t in analysis.trials]
    assert escaped == []


def test_a_rewind_that_fails_to_write_leaves_the_recorder_usable(tmp_path, monkeypatch):
    from asynctune.store import layout as storage, recording

    recorder = recording.TrialRecorder(str(tmp_path))
    for i in (1, 2, 3):
        recorder.record({"training_iteration": i, "loss": float(i)})

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recording, "_rewrite_jsonl", full)
    with pytest.raises(OSError):
        recorder.rewind(1)
    recorder.flush()  # the controller's tick: must not find closed files
    recorder.record({"training_iteration": 4, "loss": 4.0})
    recorder.close()
    assert [r["training_iteration"] for r in storage.read_results(str(tmp_path))] == [1, 2, 3, 4]


def test_a_consolidated_rewind_moves_aside_only_that_trials_later_results(tmp_path):
    from asynctune.store import layout as storage, recording

    writer = recording.BatchWriter(str(tmp_path / "results.jsonl"))
    first, second = (recording.make_recorder(str(tmp_path / f"trial_0000{i}"), "consolidated", writer=writer)
                     for i in (0, 1))
    for i in (1, 2, 3):
        first.record({"trial_id": "trial_00000", "training_iteration": i})
        second.record({"trial_id": "trial_00001", "training_iteration": i})
    writer.hand_over()  # the controller's tick: some on disk, the rest still in memory
    first.record({"trial_id": "trial_00000", "training_iteration": 4})
    assert [r["training_iteration"] for r in first.rewind(1)] == [1]  # it restarts from iteration 1
    first.record({"trial_id": "trial_00000", "training_iteration": 2, "again": True})
    writer.close()
    lines = storage.read_jsonl(str(tmp_path / "results.jsonl"))
    assert [(r["trial_id"][-1], r["training_iteration"]) for r in lines] == \
        [("1", 1), ("1", 2), ("1", 3), ("0", 1), ("0", 2)]
    assert lines[-1].get("again")
    moved = storage.read_jsonl(str(tmp_path / "results.rewound.jsonl"))
    assert [(r["trial_id"][-1], r["training_iteration"]) for r in moved] == [("0", 2), ("0", 3), ("0", 4)]
    assert not any(p.name.startswith("trial_") for p in tmp_path.iterdir())  # no trial directory was made


def test_a_config_replaced_under_any_event_is_journaled_once(tmp_path):
    from asynctune.store.state import StateWriter
    from asynctune.store import journal

    writer = StateWriter(str(tmp_path), lambda: {}, on_full=lambda exc: None)
    writer.open()
    trial = at.Trial(trial_id="trial_00000", config={"lr": 0.1}, index=0, path=str(tmp_path / "trial_00000"))
    writer.changed(trial, event="added")
    writer.changed(trial)
    trial.config = {"lr": 0.2}  # e.g. a scheduler resumed the paused trial with another config
    writer.changed(trial)
    writer.changed(trial)
    writer.close()
    assert [e.config for e in journal.read(str(tmp_path))] == [{"lr": 0.1}, None, {"lr": 0.2}, None]


def test_asynctune_resume_rebuilds_a_deleted_experiment_json(tmp_path):
    """resume() never needed experiment.json; `asynctune resume` refused the directory without it
    as "not an asynctune experiment directory"."""
    experiment_dir = kill_driver_after(tmp_path, "nosnapshot", 14)
    (experiment_dir / "experiment.json").unlink()
    resumed = subprocess.run(["asynctune", "resume", str(experiment_dir)], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    analysis = ExperimentAnalysis(str(experiment_dir))
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 6
    _assert_every_result_once(analysis, experiment_dir)


def _replace_with_a_directory(path):
    os.unlink(path)
    os.mkdir(path)


def _replace_with_a_file(path):
    import shutil

    shutil.rmtree(path)
    path.write_text("in the way")


# What was a file is a directory, or the other way round: every reader and the resume say so in
# one line naming it (they raised IsADirectoryError / NotADirectoryError from deep inside).
IN_THE_WAY = {
    "result.jsonl is a directory": ("trial_00001/result.jsonl", _replace_with_a_directory),
    "a trial directory is a file": ("trial_00001", _replace_with_a_file),
    "driver.lock is a directory": ("driver.lock", _replace_with_a_directory),
    "experiment.json is a directory": ("experiment.json", _replace_with_a_directory),
    "journal.jsonl is a directory": ("journal.jsonl", _replace_with_a_directory),
}


@pytest.mark.parametrize("damage", IN_THE_WAY)
def test_a_file_where_a_directory_was_or_the_reverse_is_one_line_naming_it(tmp_path, damage):
    experiment_dir = kill_driver_after(tmp_path, "swapped", 14)
    where, swap = IN_THE_WAY[damage]
    swap(experiment_dir / where)
    readers = [["show", str(experiment_dir)], ["show", "--json", "--scope", "last", str(experiment_dir)],
               ["resume", str(experiment_dir)]]
    for command in readers:
        done = subprocess.run(["asynctune", *command], capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        if done.returncode != 0:
            assert done.returncode == 2 and str(experiment_dir / where) in done.stderr, (command, done.stderr)
    assert done.returncode == 2  # the resume: nothing repaired or restarted behind the user's back
    if damage != "driver.lock is a directory":  # (the lock is the resume's alone)
        with pytest.raises(ValueError, match=str(experiment_dir / where)):
            analysis = ExperimentAnalysis(str(experiment_dir))
            [analysis.trial_results(t.trial_id) for t in analysis.trials]


def test_a_finished_trials_deleted_directory_runs_it_again_on_resume(tmp_path, caplog):
    """The journal holds the trial, its directory (results, checkpoints) is gone: the resume kept
    it FINISHED with no result, silently. It runs again from the start, with a warning."""
    import shutil

    experiment_dir = kill_driver_after(tmp_path, "lostdir", 24)
    assert _trial_statuses(experiment_dir)["trial_00000"] == "FINISHED"
    shutil.rmtree(experiment_dir / "trial_00000")
    resumed = at.resume(str(experiment_dir), verbose=0)
    _assert_every_result_once(resumed, experiment_dir)
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 6
    assert "trial_00000's directory is gone" in caplog.text
