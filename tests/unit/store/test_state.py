"""StateWriter: each trial change in journal.jsonl at once, experiment.json soon after, the
searcher's pickle, and the room kept for the last save (real files in tmp_path, a real tmpfs)."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest

from asynctune.store.signing import read_verified

import asynctune as at
from asynctune.core.trial import Status, Trial
from asynctune.errors import StorageFull
from asynctune.store import journal
from asynctune.store.state import RESERVE_FILE, StateWriter
from tests.helpers.disks import fill, small_tmpfs


class Counter(at.Searcher):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def suggest(self, trial_id):
        self.count += 1
        return {"n": self.count}

    def save(self, path):
        with open(path, "w") as f:
            json.dump({"count": self.count}, f)


def writer(directory, *, trials=(), full=None, **kwargs) -> StateWriter:
    snapshot = lambda: {"name": "exp", "status": "RUNNING", "trials": [t.summary() for t in trials]}  # noqa: E731
    return StateWriter(str(directory), snapshot, full.append if full is not None else _raise, **kwargs)


def _raise(exc):
    raise AssertionError(f"unexpected disk full: {exc}")


def test_a_change_is_in_the_journal_at_once_with_the_config_only_when_it_is_new(tmp_path):
    state = writer(tmp_path)
    state.open()
    trial = Trial("trial_00000", {"lr": 0.1}, index=0, resources={"cpu": 1})
    state.changed(trial, event="added")
    trial.status = Status.RUNNING
    state.changed(trial)  # read back before close: each line is flushed as it is written
    events = journal.read(str(tmp_path))
    assert [(e.op, e.status, e.config is not None) for e in events] == [("added", "PENDING", True),
                                                                         ("status", "RUNNING", False)]
    assert events[0].config == {"lr": 0.1} and events[0].resources == {"cpu": 1}
    trial.config = {"lr": 0.5}  # a resume with another config: a new object
    state.changed(trial)
    state.changed(trial, event="mutated")  # always carries it
    state.close()
    events = journal.read(str(tmp_path))
    assert [e.config for e in events[2:]] == [{"lr": 0.5}, {"lr": 0.5}]


def test_the_snapshot_is_written_whole_and_the_reserve_grows_with_it(tmp_path):
    trials = [Trial(f"trial_{i:05d}", {"text": "x" * 2000}, index=i) for i in range(200)]
    state = writer(tmp_path, trials=trials)
    state.open()
    reserve = os.path.join(tmp_path, RESERVE_FILE)
    assert os.path.getsize(reserve) >= 256 * 1024
    state.save()
    with open(tmp_path / "experiment.json") as f:
        saved = json.load(f)
    assert saved["name"] == "exp" and len(saved["trials"]) == 200
    assert state.saved == {"format_version": 1, "name": "exp", "status": "RUNNING"}  # less the trial table
    assert os.path.getsize(reserve) >= 2 * os.path.getsize(tmp_path / "experiment.json") > 256 * 1024
    state.release_reserve()
    assert not os.path.exists(reserve)
    state.close()


async def test_changes_are_saved_soon_not_at_once(tmp_path):
    state = writer(tmp_path)
    state.open()
    task = asyncio.create_task(state.save_periodically())
    try:
        await asyncio.sleep(0.05)
        assert not os.path.exists(tmp_path / "experiment.json")  # nothing changed yet
        state.changed()
        await asyncio.sleep(0.05)
        assert os.path.exists(tmp_path / "experiment.json")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state.close()


def test_the_searchers_state_is_a_private_file(tmp_path):
    state = writer(tmp_path)
    state.open()
    searcher = Counter()
    searcher.suggest("trial_00000")
    state.save_searcher(searcher)
    path = tmp_path / "searcher_state.pkl"
    assert json.loads(read_verified(str(path))) == {"count": 1}  # signed with the user's key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(str(path) + ".tmp")
    state.close()


def test_batched_writes_the_searcher_and_the_snapshot_at_the_end_and_journal_false_writes_no_journal(tmp_path):
    state = writer(tmp_path, batched=True, journal=False)
    state.open()
    searcher = Counter()
    state.save_searcher(searcher)
    state.changed(Trial("trial_00000", {}, index=0))
    assert not os.path.exists(tmp_path / "searcher_state.pkl")
    searcher.suggest("trial_00000")  # what the last save() writes is its state then
    state.save()
    assert json.loads(read_verified(str(tmp_path / "searcher_state.pkl"))) == {"count": 1}
    with open(tmp_path / "experiment.json") as f:
        assert json.load(f)["status"] == "RUNNING"
    state.close()
    assert not os.path.exists(tmp_path / "journal.jsonl")


def test_a_full_disk_goes_to_on_full_not_to_the_code_that_changed_a_trial(tmp_path):
    with small_tmpfs(str(tmp_path / "disk"), "512k") as disk:
        full: list[StorageFull] = []
        state = writer(disk, full=full)
        state.open()
        fill(disk)
        trial = Trial("trial_00000", {"pad": "x" * 70_000}, index=0)
        state.changed(trial, event="added")  # larger than the journal's buffer: written now, and refused
        assert full and full[0].path == os.path.join(disk, "journal.jsonl") and full[0].experiment_dir == disk
        # The reserve makes room for the last experiment.json.
        state.release_reserve()
        state.save()
        with open(os.path.join(disk, "experiment.json")) as f:
            assert json.load(f)["name"] == "exp"
        os.unlink(os.path.join(disk, "filler"))
        state.close()


def test_a_disk_already_full_is_storage_full_at_open(tmp_path):
    with small_tmpfs(str(tmp_path / "disk"), "128k") as disk:
        fill(disk)
        with pytest.raises(StorageFull, match="asynctune resume"):
            writer(disk).open()


def test_the_snapshot_holds_a_line_per_trial_and_reads_back_whole(tmp_path):
    trials = [Trial(f"trial_{i:05d}", {"lr": 0.1 * i, "bad": float("nan")}, index=i, path=str(tmp_path / f"trial_{i:05d}"))
              for i in range(3)]
    state = writer(tmp_path, trials=trials)
    state.open()
    state.save()
    lines = (tmp_path / "experiment.json").read_text().splitlines()
    assert lines[0].startswith('{"name": "exp", "status": "RUNNING"') and lines[0].endswith('"trials": [')
    assert [json.loads(line.rstrip(","))["trial_id"] for line in lines[1:-1]] == [t.trial_id for t in trials]
    assert lines[-1] == "]}"
    saved = json.loads((tmp_path / "experiment.json").read_text())
    assert [t["config"] for t in saved["trials"]] == [{"lr": 0.1 * i, "bad": None} for i in range(3)]  # strict JSON
    assert saved["trials"][1]["path"] == "trial_00001"  # relative
    state.close()
