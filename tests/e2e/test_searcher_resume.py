"""Searchers whose state cannot be pickled keep working across resume (issue 27, case 8):
OptunaSearch keeps its study in the experiment directory (Optuna's journal file storage), any
other searcher that cannot be saved is warned about once and rebuilt by replay on resume."""

from __future__ import annotations

import logging
import os
import signal
import textwrap
import time

import pytest

import asynctune as at
from tests.helpers.driver_runs import start_script, wait_for_results

optuna = pytest.importorskip("optuna")

DRIVER = textwrap.dedent("""
    import random, sys, threading, time
    import asynctune as at

    class LockedRandom(at.Searcher):
        '''Seeded random search that holds a lock once in use: it cannot be pickled then.'''

        multi_objective = True  # it ignores the metrics

        def set_search_properties(self, metric, mode, space, *, seed=None):
            super().set_search_properties(metric, mode, space, seed=seed)
            self.lock, self.rng = threading.Lock(), random.Random(7)

        def suggest(self, trial_id):
            with self.lock:
                return {"x": self.rng.random(), "y": self.rng.random()}

    def train(config):
        for i in range(1, 4):
            time.sleep(0.05)
            at.report(a=config["x"] * i, b=(1 - config["x"]) * config["y"])

    if __name__ == "__main__":
        kind = sys.argv[3]
        space = {"x": at.uniform(0, 1), "y": at.uniform(0, 1)}
        searcher = at.OptunaSearch(sampler="nsga2", seed=0) if kind == "nsga2" else LockedRandom()
        at.run(train, config=space, num_samples=12, max_concurrent_trials=2, metric=["a", "b"],
               mode=["min", "min"], search_alg=searcher, storage_path=sys.argv[1], name=sys.argv[2],
               verbose=0, tensorboard=False)
""")


def train(config: dict) -> None:
    for i in range(1, 3):
        at.report(a=config["x"] * i, b=(1 - config["x"]) * i)


def _leftovers(directory: str) -> list[str]:
    return [os.path.join(root, name) for root, _, files in os.walk(directory) for name in files
            if name.endswith(".tmp")]


@pytest.mark.parametrize("sampler", ["nsga2", "instance"])
def test_nsga2_runs_without_save_failures_or_temporary_files(storage, caplog, sampler):
    chosen = optuna.samplers.NSGAIISampler(seed=0) if sampler == "instance" else "nsga2"
    caplog.set_level(logging.WARNING, logger="asynctune")
    analysis = at.run(train, config={"x": at.uniform(0, 1)}, num_samples=5, metric=["a", "b"], mode=["min", "min"],
                      search_alg=at.OptunaSearch(sampler=chosen, seed=0 if sampler == "nsga2" else None),
                      storage_path=storage, name="exp", verbose=0, tensorboard=False)
    assert len(analysis.trials) == 5 and all(t.status.is_finished for t in analysis.trials)
    assert [r.getMessage() for r in caplog.records] == []
    assert _leftovers(analysis.experiment_dir) == []
    journal = os.path.join(analysis.experiment_dir, "optuna_journal.log")
    assert os.stat(journal).st_mode & 0o777 == 0o600
    study = optuna.load_study(study_name="asynctune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal)))
    assert len(study.trials) == 5 and all(t.state.name == "COMPLETE" for t in study.trials)


@pytest.mark.parametrize("kind", ["nsga2", "unsaveable"])
def test_a_resumed_searcher_never_proposes_a_config_again(tmp_path, kind):
    driver = start_script(tmp_path / "driver.py", DRIVER, tmp_path / "results", "exp", kind)
    experiment_dir = tmp_path / "results" / "exp"
    wait_for_results(experiment_dir, 10, timeout=90)
    driver.send_signal(signal.SIGINT)  # Ctrl-C
    output = driver.communicate(timeout=60)[0].decode()
    done_before = len([d for d in os.listdir(experiment_dir) if d.startswith("trial_")])
    assert 2 <= done_before < 12, output

    resumed = at.resume(str(experiment_dir), verbose=0)
    configs = [(t.config["x"], t.config["y"]) for t in resumed.trials]
    assert len(configs) == 12 and len(set(configs)) == 12, f"a config was proposed twice: {sorted(configs)}"
    assert _leftovers(str(experiment_dir)) == []
    if kind == "unsaveable":  # one warning, not one per trial
        assert output.count("cannot be saved") == 1, output
        assert "failed" not in output, output
        return
    assert "cannot be saved" not in output and "failed" not in output, output
    study = optuna.load_study(study_name="asynctune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(experiment_dir / "optuna_journal.log"))))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 12, [t.state.name for t in study.trials]  # one study, before and after the resume
    assert sorted((t.params["x"], t.params["y"]) for t in complete) == sorted(configs)


KILLED_DRIVER = textwrap.dedent("""
    import sys, time
    import asynctune as at

    def train(config):
        for i in range(1, 5):
            time.sleep(0.05)
            at.report(loss=config["x"] / i)

    if __name__ == "__main__":
        at.run(train, config={"x": at.uniform(0, 1)}, num_samples=8, max_concurrent_trials=2, metric="loss",
               mode="min", search_alg=at.OptunaSearch(seed=0), storage_path=sys.argv[1], name=sys.argv[2],
               verbose=0, tensorboard=False)
""")


def _killed_optuna_driver(tmp_path):
    """KILLED_DRIVER SIGKILLed after 6 results; its experiment directory."""
    driver = start_script(tmp_path / "driver.py", KILLED_DRIVER, tmp_path / "results", "exp")
    experiment_dir = tmp_path / "results" / "exp"
    wait_for_results(experiment_dir, 6, timeout=90)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    return experiment_dir


@pytest.mark.parametrize("damage", ["torn line", "lock left"])
def test_a_driver_killed_while_optuna_appends_resumes(tmp_path, capfd, damage):
    """A driver killed (or a disk filling) in the middle of Optuna's append leaves its journal's
    last line torn, and perhaps Optuna's lock file: the resume neither glues the next line onto
    the torn one (Optuna could then not read its study) nor waits for the lock to go stale."""
    experiment_dir = _killed_optuna_driver(tmp_path)
    journal = experiment_dir / "optuna_journal.log"
    text = journal.read_bytes()
    torn = b'{"op_code": 6, "worker_id": "w", "trial_id": 0, "sta'  # a line cut short by the kill
    if damage == "torn line":
        journal.write_bytes(text + torn)
    else:
        (experiment_dir / "optuna_journal.log.lock").write_bytes(b"")  # Optuna held it when killed

    started = time.monotonic()
    resumed = at.resume(str(experiment_dir), verbose=0)
    elapsed = time.monotonic() - started

    assert [t.status for t in resumed.trials] == [at.Status.FINISHED] * 8
    assert all(len(resumed.trial_results(t.trial_id)) == 4 for t in resumed.trials)
    study = optuna.load_study(study_name="asynctune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert len(study.trials) >= 8  # it reads whole again (a trial asked for as the driver died may stay RUNNING)
    assert journal.read_bytes().startswith(text) and journal.read_bytes().endswith(b"\n")
    if damage == "torn line":
        assert (experiment_dir / "optuna_journal.log.torn").read_bytes() == torn + b"\n"  # kept, not lost
    else:
        assert not (experiment_dir / "optuna_journal.log.lock").exists()
        assert "lock file" not in capfd.readouterr().err  # Optuna never waited for it
        assert elapsed < 25, elapsed  # Optuna forces a stale lock only after 30 s


def test_an_unreadable_optuna_journal_is_a_clear_error_with_a_way_on(tmp_path):
    """A line in the middle of Optuna's journal that is not JSON (damage, not a torn end) cannot be
    repaired without guessing: the resume names the file and what to do, and doing it works."""
    experiment_dir = _killed_optuna_driver(tmp_path)
    journal = experiment_dir / "optuna_journal.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:2] + [b"\x00garbage{\n"] + lines[2:]))
    with pytest.raises(at.ExperimentDamaged, match=r"optuna_journal.log is unreadable .*move it and "
                                                   r"searcher_state.pkl away"):
        at.resume(str(experiment_dir), verbose=0)
    aside = tmp_path / "aside"
    aside.mkdir()
    for name in ("optuna_journal.log", "searcher_state.pkl"):
        os.rename(experiment_dir / name, aside / name)
    resumed = at.resume(str(experiment_dir), verbose=0)
    assert [t.status for t in resumed.trials] == [at.Status.FINISHED] * 8
    assert all(len(resumed.trial_results(t.trial_id)) == 4 for t in resumed.trials)
