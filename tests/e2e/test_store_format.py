"""experiment.json as a contract (issue 27, cases 3 and 4): a format version, older formats read,
a newer one refused naming both versions, a damaged file named in one line while the other
experiments still list; and only relative paths, so a moved or copied experiment reads, shows,
serves and resumes where it is now."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import asynctune as at
from tests.helpers.held_driver import held_driver, kill_held


def train(config):
    for i in range(3):
        at.report(loss=config["x"] + 1.0 / (i + 1), checkpoint={"i": i + 1})


def _experiment(storage, name="exp"):
    return at.run(train, config={"x": at.grid_search([0.0, 1.0, 2.0])}, metric="loss", mode="min",
                  storage_path=storage, name=name, verbose=0)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "asynctune.cli", *args], capture_output=True, text=True, timeout=60)


def _rewrite(path, change):
    with open(path) as f:
        state = json.load(f)
    state = change(state)
    with open(path, "w") as f:
        json.dump(state, f)


def test_version_is_written_and_a_file_without_one_still_reads(storage):
    _experiment(storage)
    path = os.path.join(storage, "exp", "experiment.json")
    with open(path) as f:
        state = json.load(f)
    from asynctune.store.format import FORMAT_VERSION

    assert state["format_version"] == FORMAT_VERSION >= 1
    assert all(not os.path.isabs(t["path"]) and not os.path.isabs(t["checkpoint"]) for t in state["trials"])

    def older(state):  # as the versions before the format was recorded wrote it: absolute paths
        del state["format_version"]
        for trial in state["trials"]:
            trial["path"] = os.path.join(storage, "exp", trial["path"])
            trial["checkpoint"] = os.path.join(storage, "exp", trial["checkpoint"])
        return state

    _rewrite(path, older)
    moved = os.path.join(storage, "moved")
    os.rename(os.path.join(storage, "exp"), moved)
    analysis = at.ExperimentAnalysis(moved)
    assert analysis.best_config == {"x": 0.0}
    assert analysis.best_checkpoint.startswith(moved + os.sep) and os.path.isdir(analysis.best_checkpoint)
    assert len(analysis.dataframe()) == 3


def test_newer_format_refused_naming_both_versions(storage):
    _experiment(storage)
    experiment = os.path.join(storage, "exp")
    _rewrite(os.path.join(experiment, "experiment.json"), lambda s: {**s, "format_version": 99})
    with pytest.raises(ValueError, match=r"format version 99 is newer than this asynctune reads \(version 1\)"):
        at.ExperimentAnalysis(experiment)
    with pytest.raises(ValueError, match="format version 99"):
        at.resume(experiment, verbose=0)
    shown = _cli("show", experiment)
    assert shown.returncode == 2 and "format version 99" in shown.stderr and "Traceback" not in shown.stderr


def test_a_journal_line_of_a_newer_format_stops_a_resume_naming_both_versions(storage):
    from asynctune.store.journal import JOURNAL_VERSION

    _experiment(storage)
    journal = os.path.join(storage, "exp", "journal.jsonl")
    with open(journal) as f:
        lines = f.read().splitlines()
    assert lines and all(json.loads(line)["v"] == JOURNAL_VERSION for line in lines)
    with open(journal, "a") as f:  # what a newer asynctune resuming it might have appended
        f.write(json.dumps({"v": JOURNAL_VERSION + 1, "event": "migrated", "trial_id": "trial_00000"}) + "\n")
    expected = (f"journal.jsonl, line {len(lines) + 1}: format version {JOURNAL_VERSION + 1} is newer than this "
                f"asynctune reads (version {JOURNAL_VERSION})")
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        at.resume(os.path.join(storage, "exp"), verbose=0)
    resumed = _cli("resume", os.path.join(storage, "exp"))
    assert resumed.returncode == 2 and expected in resumed.stderr and "Traceback" not in resumed.stderr
    with open(journal) as f:
        assert len(f.read().splitlines()) == len(lines) + 1  # left as it was: not damage to move aside


@pytest.mark.parametrize("content, field", [
    ("[]", "expected a JSON object, found a list"),
    ("null", "expected a JSON object, found null"),
    ('{"trials": {"a": 1}}', "field 'trials' is"),
    ('{"trials": [{"trial_id": "trial_00000", "status": 7}]}', "field 'trials[0].status' is 7"),
    ('{"status": "FINISHED", "metric": 3, "trials": []}', "field 'metric' is 3"),
    ('{"trials": [null]}', "field 'trials[0]' is null"),
    ('{"trials": [{"trial_id": "trial_00000", "config": []}]}', "field 'trials[0].config' is []"),
])
def test_damaged_file_is_one_line_and_the_others_still_list(storage, content, field):
    _experiment(storage, "good")
    _experiment(storage, "bad")
    bad = os.path.join(storage, "bad", "experiment.json")
    with open(bad, "w") as f:
        f.write(content)

    with pytest.raises(ValueError) as caught:
        at.ExperimentAnalysis(os.path.join(storage, "bad"))
    message = str(caught.value)
    assert message.startswith(bad + ": ") and field in message and "\n" not in message

    listed = _cli("ls", storage, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["experiment"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert rows["good"]["status"] == "FINISHED" and rows["good"]["trials"] == 3
    assert "unreadable" in rows["bad"]["status"] and field in rows["bad"]["status"]

    shown = _cli("show", os.path.join(storage, "bad"))
    assert shown.returncode == 2 and field in shown.stderr and "Traceback" not in shown.stderr

    from asynctune.analysis import load_experiments

    frame = load_experiments(storage)
    assert set(frame["experiment"]) == {"good", "bad"}
    assert (frame[frame["experiment"] == "bad"]["status"] == "DAMAGED").all()
    assert len(frame[frame["experiment"] == "good"]) == 3


def test_dashboard_lists_a_damaged_experiment_as_such(storage):
    pytest.importorskip("aiohttp")
    from asynctune.dashboard.data import ExperimentStore

    _experiment(storage, "good")
    _experiment(storage, "bad")
    with open(os.path.join(storage, "bad", "experiment.json"), "w") as f:
        f.write("[]")
    rows = {r["name"]: r for r in ExperimentStore(storage).summaries()}
    assert rows["good"]["status"] == "FINISHED"
    assert "unreadable" in rows["bad"]["status"] and "expected a JSON object, found a list" in rows["bad"]["status"]


@pytest.mark.parametrize("how", ["mv", "cp -r"])
def test_moved_or_copied_experiment_reads_where_it_is_now(storage, tmp_path, how):
    original = _experiment(storage)
    source = os.path.join(storage, "exp")
    target = str(tmp_path / "elsewhere" / "exp")
    os.makedirs(os.path.dirname(target))
    if how == "mv":
        shutil.move(source, target)
    else:
        shutil.copytree(source, target, symlinks=True)
        shutil.rmtree(source)  # the original is gone: the copy must not need it

    analysis = at.ExperimentAnalysis(target)
    assert analysis.best_config == original.best_config
    assert analysis.best_checkpoint == os.path.join(target, "trial_00000", "checkpoint_000003")
    frame = analysis.dataframe()
    assert len(frame) == 3 and frame["loss"].notna().all()
    assert all(t.path.startswith(target + os.sep) for t in analysis.trials)
    assert all(t.checkpoint.startswith(target + os.sep) for t in analysis.trials)
    assert len(analysis.trial_results("trial_00001")) == 3

    shown = _cli("show", target, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["path"] == target


RESUMABLE = held_driver(results=6, hold_after=2, metric="loss", mode="min")


def test_moved_experiment_resumes_where_it_is_now(storage, tmp_path):
    kill_held(tmp_path, RESUMABLE, storage, results=4)
    target = str(tmp_path / "moved")
    shutil.move(os.path.join(storage, "exp"), target)

    analysis = at.resume(target, verbose=0)
    assert analysis.status == "FINISHED" and not os.path.exists(os.path.join(storage, "exp"))
    assert analysis.best_checkpoint == os.path.join(target, "trial_00000", "checkpoint_000001")
    for trial in at.ExperimentAnalysis(target).trials:
        assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3, 4, 5, 6]
        assert trial.checkpoint.startswith(target + os.sep)
