"""One status vocabulary (issue 27, case 7): FINISHED and EARLY_STOPPED are trial statuses,
persisted and restored by resume, and every reader shows the same word for the same trial."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import asynctune as at
from asynctune.reporting.console import ConsoleReporter
from tests.helpers.driver_runs import start_script

ASHA_DRIVER = textwrap.dedent("""
    import sys, time
    import asynctune as at

    def train(config):
        start = (at.get_checkpoint() or {"i": 0})["i"]
        for i in range(start + 1, 10):
            time.sleep(0.03)
            at.report(loss=config["x"] / i, checkpoint={"i": i})

    if __name__ == "__main__":
        at.run(train, config={"x": at.grid_search([1, 2, 3, 4, 5, 6, 7, 8])}, metric="loss", mode="min",
               scheduler=at.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=2),
               max_concurrent_trials=2, storage_path=sys.argv[1], name=sys.argv[2], verbose=1, tensorboard=False)
""")


def _journal_statuses(experiment_dir: str) -> dict[str, str]:
    last: dict[str, str] = {}
    with open(os.path.join(experiment_dir, "journal.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            if "trial_id" in event:
                last[event["trial_id"]] = event["status"]
    return last


def _stopped_early(experiment_dir: str) -> set[str]:
    with open(os.path.join(experiment_dir, "decisions.jsonl")) as f:
        return {d["trial_id"] for d in map(json.loads, f) if d["decision"] == "STOP" and d.get("early")}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asynctune.cli", *args], capture_output=True, text=True, timeout=300)


def _console_statuses(output: str, trial_ids: list[str]) -> dict[str, str]:
    """Each trial's status in the last table the console printed."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        words = line.replace("│", " ").replace("|", " ").split()
        for trial_id in trial_ids:
            if trial_id in words[:1]:
                found[trial_id] = words[1]
    return found


def test_asha_trials_are_early_stopped_or_finished_in_every_reader(tmp_path):
    driver = start_script(tmp_path / "driver.py", ASHA_DRIVER, tmp_path / "results", "asha")
    stdout = driver.communicate(timeout=300)[0].decode()
    assert driver.returncode == 0, stdout
    experiment_dir = str(tmp_path / "results" / "asha")
    analysis = at.ExperimentAnalysis(experiment_dir)
    statuses = {t.trial_id: t.status.value for t in analysis.trials}
    early = _stopped_early(experiment_dir)
    assert early and set(statuses.values()) == {"FINISHED", "EARLY_STOPPED"}
    assert {t for t, s in statuses.items() if s == "EARLY_STOPPED"} == early
    for trial in analysis.trials:  # a trial that ran to max_t finished, whatever the scheduler said there
        if trial.status is at.Status.FINISHED:
            assert trial.last_result["training_iteration"] == 9

    assert _journal_statuses(experiment_dir) == statuses
    assert _console_statuses(stdout, list(statuses)) == statuses
    shown = json.loads(_cli("show", "--json", "--top", "100", experiment_dir).stdout)
    assert {t["trial_id"]: t["status"] for t in shown["trials"]} == statuses
    listed = _cli("ls", str(tmp_path / "results")).stdout
    counts = {s: list(statuses.values()).count(s) for s in ("FINISHED", "EARLY_STOPPED")}
    assert f"{counts['FINISHED']} finished" in listed and f"{counts['EARLY_STOPPED']} early_stopped" in listed
    assert "terminated" not in listed.lower()
    _check_dashboard(str(tmp_path / "results"), statuses)


def _check_dashboard(root: str, statuses: dict[str, str]) -> None:
    pytest.importorskip("aiohttp")
    import aiohttp

    from asynctune.dashboard import serve

    async def fetch() -> tuple[dict, dict, dict]:
        async with serve(root) as url, aiohttp.ClientSession() as session:
            answers = []
            for path in ("/api/experiments", "/api/experiments/asha/trials", "/api/experiments/asha/curves"):
                async with session.get(url.rstrip("/") + path) as response:
                    answers.append(await response.json())
            return tuple(answers)

    listing, trials, curves = asyncio.run(fetch())
    assert {t["trial_id"]: t["status"] for t in trials["trials"]} == statuses
    summary = listing["experiments"][0]
    assert summary["statuses"] == [s.value for s in at.Status]
    assert summary["FINISHED"] == list(statuses.values()).count("FINISHED")
    # A STOP at max_t carries early=false: the page draws no "stopped" cross for it.
    finished = {t for t, s in statuses.items() if s == "FINISHED"}
    assert all(d.get("early") is False for d in curves["decisions"] if d["trial_id"] in finished)


def test_a_stop_criterion_finishes_a_trial(storage):
    def train(config):
        for i in range(1, 20):
            at.report(loss=1 / i)

    analysis = at.run(train, num_samples=2, metric="loss", mode="min", stop={"training_iteration": 3},
                      scheduler=at.ASHAScheduler(max_t=100, grace_period=10), storage_path=storage, name="exp",
                      verbose=0, tensorboard=False)
    assert [t.status for t in analysis.trials] == [at.Status.FINISHED] * 2
    assert set(_journal_statuses(analysis.experiment_dir).values()) == {"FINISHED"}


class _PausesAtThree(at.Scheduler):
    def on_trial_result(self, trial, result):
        return at.PAUSE if result["training_iteration"] == 3 else at.CONTINUE


def test_a_stop_criterion_that_overrules_a_pause_is_no_early_stop(storage):
    """stop= ends the trial at the iteration where the scheduler paused it (PBT pausing to exploit
    at the last iteration): the trial finished, so neither the console nor decisions.jsonl calls
    it early-stopped."""
    def train(config):
        for i in range(1, 10):
            at.report(loss=1 / i)

    console = io.StringIO()
    reporter = ConsoleReporter(metric="loss", mode="min", verbose=1, file=console)
    analysis = at.run(train, num_samples=2, metric="loss", mode="min", stop={"training_iteration": 3},
                      scheduler=_PausesAtThree(), storage_path=storage, name="exp", verbose=0, tensorboard=False,
                      callbacks=[reporter])
    assert [t.status for t in analysis.trials] == [at.Status.FINISHED] * 2
    assert [d for d in analysis.decisions() if d["decision"] == "STOP"] == []
    assert "early-stopped" not in console.getvalue()


def test_after_ctrl_c_and_resume_early_stopped_trials_stay_early_stopped(tmp_path):
    driver = start_script(tmp_path / "driver.py", ASHA_DRIVER, tmp_path / "results", "asha")
    experiment_dir = str(tmp_path / "results" / "asha")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if len(_stopped_early(experiment_dir)) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    driver.send_signal(signal.SIGINT)
    first = driver.communicate(timeout=60)[0].decode()
    assert "Resume with" in first, first
    early_before = _stopped_early(experiment_dir)
    assert len(early_before) >= 2

    resumed = _cli("resume", experiment_dir, "-v", "1")
    assert resumed.returncode == 0, resumed.stderr
    statuses = {t.trial_id: t.status.value for t in at.ExperimentAnalysis(experiment_dir).trials}
    console = _console_statuses(resumed.stdout, list(statuses))
    for trial_id in early_before:
        assert statuses[trial_id] == console[trial_id] == "EARLY_STOPPED", (trial_id, resumed.stdout)
    assert console == statuses


def test_a_directory_from_an_older_version_reads_terminated_by_its_decisions(storage):
    analysis = at.run(lambda config: [at.report(loss=config["x"] / i) for i in range(1, 10)],
                      config={"x": at.grid_search([1, 2, 3, 4])}, metric="loss", mode="min",
                      scheduler=at.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=2),
                      storage_path=storage, name="exp", verbose=0, tensorboard=False)
    now = {t.trial_id: t.status.value for t in analysis.trials}
    path = os.path.join(analysis.experiment_dir, "experiment.json")
    with open(path) as f:
        snapshot = json.load(f)
    for trial in snapshot["trials"]:  # as an asynctune before this vocabulary wrote it
        trial["status"] = "TERMINATED" if trial["status"] in ("FINISHED", "EARLY_STOPPED") else trial["status"]
    with open(path, "w") as f:
        json.dump(snapshot, f)
    assert {t.trial_id: t.status.value for t in at.ExperimentAnalysis(analysis.experiment_dir).trials} == now
