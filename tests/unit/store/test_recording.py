"""The three recordings of a trial's results (files, batched, consolidated) on real files: what
is on disk when, the rewind of a restarted trial, and failures that are kept to be raised later."""

from __future__ import annotations

import csv
import json
import os
import stat

import pytest

from asynctune.store.layout import read_jsonl, read_results
from asynctune.store.recording import (
    RECORDINGS, BatchedTrialRecorder, BatchWriter, ConsolidatedTrialRecorder, TrialRecorder, make_recorder,
)


def result(iteration: int, **extra) -> dict:
    return {"loss": 1.0 / iteration, "training_iteration": iteration, **extra}


def rows(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


# recording="files" ----------------------------------------------------------------------------------

def test_files_each_result_is_in_result_jsonl_as_it_arrives(tmp_path):
    trial_dir = str(tmp_path / "trial_00000")
    recorder = TrialRecorder(trial_dir)
    recorder.write_params({"lr": 0.1})
    recorder.record(result(1, note="first"))
    assert read_results(trial_dir) == [result(1, note="first")]  # flushed: no close needed
    recorder.record(result(2, later={"nested": 1}))  # a key the first result lacked: in the .jsonl only
    recorder.close()
    assert [r["training_iteration"] for r in read_results(trial_dir)] == [1, 2]
    assert rows(os.path.join(trial_dir, "progress.csv")) == [["loss", "training_iteration", "note"],
                                                             ["1.0", "1", "first"], ["0.5", "2", ""]]
    with open(os.path.join(trial_dir, "params.json")) as f:
        assert json.load(f) == {"lr": 0.1}
    for name in ("result.jsonl", "progress.csv", "params.json"):
        assert stat.S_IMODE(os.stat(os.path.join(trial_dir, name)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(trial_dir).st_mode) == 0o700


def test_files_a_reopened_trial_keeps_its_columns(tmp_path):
    trial_dir = str(tmp_path / "trial_00000")
    first = TrialRecorder(trial_dir)
    first.record(result(1))
    first.close()
    again = TrialRecorder(trial_dir)  # a resumed session
    again.record({"training_iteration": 2, "loss": 0.5, "new": 3})
    again.close()
    assert rows(os.path.join(trial_dir, "progress.csv")) == [["loss", "training_iteration"], ["1.0", "1"],
                                                             ["0.5", "2"]]


def test_files_rewind_moves_the_later_results_aside_and_goes_on_appending(tmp_path):
    trial_dir = str(tmp_path / "trial_00000")
    recorder = TrialRecorder(trial_dir)
    for iteration in range(1, 6):
        recorder.record(result(iteration))
    kept = recorder.rewind(2)
    assert [r["training_iteration"] for r in kept] == [1, 2]
    recorder.record(result(3, again=True))
    recorder.close()
    assert [(r["training_iteration"], r.get("again")) for r in read_results(trial_dir)] == [(1, None), (2, None),
                                                                                          (3, True)]
    assert [r["training_iteration"] for r in read_jsonl(os.path.join(trial_dir, "result.rewound.jsonl"))] == [3, 4, 5]
    assert [row[1] for row in rows(os.path.join(trial_dir, "progress.csv"))] == ["training_iteration", "1", "2",
                                                                                 "3"]


def test_files_errors_are_appended_per_attempt(tmp_path):
    recorder = TrialRecorder(str(tmp_path / "t"))
    recorder.write_error(1, "RuntimeError: a", "trace a")
    recorder.write_error(2, "RuntimeError: b", "trace b")
    recorder.close()
    assert (tmp_path / "t" / "error.txt").read_text() == ("--- attempt 1: RuntimeError: a\ntrace a\n"
                                                          "--- attempt 2: RuntimeError: b\ntrace b\n")


# recording="batched" --------------------------------------------------------------------------------

def test_batched_nothing_is_on_disk_until_the_writer_has_written_it(tmp_path):
    trial_dir = str(tmp_path / "trial_00000")
    writer = BatchWriter()
    recorder = BatchedTrialRecorder(trial_dir, writer=writer)
    recorder.write_params({"lr": 0.1})
    recorder.record(result(1))
    recorder.record(result(2))
    assert not os.path.exists(trial_dir)  # not even its directory
    recorder.flush()  # handed to the writer, which writes at its hand-over
    writer.drain()
    assert [r["training_iteration"] for r in read_results(trial_dir)] == [1, 2]
    assert rows(os.path.join(trial_dir, "progress.csv"))[0] == ["loss", "training_iteration"]
    recorder.record(result(3))
    recorder.close()
    writer.close()
    assert [r["training_iteration"] for r in read_results(trial_dir)] == [1, 2, 3]
    assert len(rows(os.path.join(trial_dir, "progress.csv"))) == 4  # one header, three rows
    with open(os.path.join(trial_dir, "params.json")) as f:
        assert json.load(f) == {"lr": 0.1}


def test_batched_a_long_trial_is_flushed_every_max_buffered_results(tmp_path):
    trial_dir = str(tmp_path / "trial_00000")
    recorder = BatchedTrialRecorder(trial_dir, max_buffered=3)  # no writer: written in the caller
    for iteration in range(1, 5):
        recorder.record(result(iteration))
    assert [r["training_iteration"] for r in read_results(trial_dir)] == [1, 2, 3]
    recorder.close()
    assert len(read_results(trial_dir)) == 4


def test_batched_a_failed_write_is_raised_by_the_next_flush(tmp_path):
    (tmp_path / "in_the_way").write_text("a file where the trial's parent directory must go")
    writer = BatchWriter()
    recorder = BatchedTrialRecorder(str(tmp_path / "in_the_way" / "trial_00000"), writer=writer)
    recorder.record(result(1))
    recorder.flush()
    writer.drain()
    with pytest.raises(OSError):
        recorder.flush()
    recorder.flush()  # raised once
    writer.close()


def test_batched_rewind_sees_what_was_still_buffered(tmp_path):
    trial_dir = str(tmp_path / "trial_00000")
    writer = BatchWriter()
    recorder = BatchedTrialRecorder(trial_dir, writer=writer)
    for iteration in range(1, 5):
        recorder.record(result(iteration))
    kept = recorder.rewind(1)
    assert [r["training_iteration"] for r in kept] == [1]
    assert [r["training_iteration"] for r in read_jsonl(os.path.join(trial_dir, "result.rewound.jsonl"))] == [2, 3, 4]
    writer.close()


# recording="consolidated" ---------------------------------------------------------------------------

def test_consolidated_every_trial_goes_to_one_results_file_and_makes_no_directory(tmp_path):
    writer = BatchWriter(str(tmp_path / "results.jsonl"))
    a = make_recorder(str(tmp_path / "trial_00000"), "consolidated", writer=writer)
    b = make_recorder(str(tmp_path / "trial_00001"), "consolidated", writer=writer)
    assert isinstance(a, ConsolidatedTrialRecorder)
    a.write_params({"lr": 0.1})  # experiment.json keeps the configs
    for iteration in (1, 2, 3):
        a.record(result(iteration, trial_id="trial_00000"))
        b.record(result(iteration, trial_id="trial_00001"))
    writer.hand_over()
    writer.drain()
    lines = read_jsonl(str(tmp_path / "results.jsonl"))
    assert [(r["trial_id"], r["training_iteration"]) for r in lines][:2] == [("trial_00000", 1), ("trial_00001", 1)]
    assert len(lines) == 6
    kept = a.rewind(1)  # trial_00000 restarts from its checkpoint at 1; trial_00001 is untouched
    assert [r["training_iteration"] for r in kept] == [1]
    lines = read_jsonl(str(tmp_path / "results.jsonl"))
    assert [r["training_iteration"] for r in lines if r["trial_id"] == "trial_00001"] == [1, 2, 3]
    assert [r["training_iteration"] for r in lines if r["trial_id"] == "trial_00000"] == [1]
    moved = read_jsonl(str(tmp_path / "results.rewound.jsonl"))
    assert [(r["trial_id"], r["training_iteration"]) for r in moved] == [("trial_00000", 2), ("trial_00000", 3)]
    a.write_error(1, "RuntimeError: x", "trace")  # an error makes its directory
    writer.close()
    assert sorted(os.listdir(tmp_path)) == ["results.jsonl", "results.rewound.jsonl", "trial_00000"]
    assert os.listdir(tmp_path / "trial_00000") == ["error.txt"]


def test_consolidated_a_failed_append_is_kept_and_no_later_line_follows_the_gap(tmp_path):
    writer = BatchWriter(str(tmp_path / "missing" / "results.jsonl"))  # its directory does not exist
    recorder = make_recorder(str(tmp_path / "trial_00000"), "consolidated", writer=writer)
    recorder.record(result(1))
    writer.drain()
    assert isinstance(writer.results.failure, FileNotFoundError)
    os.makedirs(tmp_path / "missing")
    recorder.record(result(2))
    writer.drain()
    assert not os.path.exists(tmp_path / "missing" / "results.jsonl")
    with pytest.raises(FileNotFoundError):
        recorder.rewind(0)
    writer.close()


@pytest.mark.parametrize("recording", RECORDINGS)
def test_make_recorder_gives_each_recording_its_recorder(tmp_path, recording):
    writer = BatchWriter(str(tmp_path / "results.jsonl"))
    recorder = make_recorder(str(tmp_path / "trial_00000"), recording, writer=writer)
    expected = {"files": TrialRecorder, "batched": BatchedTrialRecorder, "consolidated": ConsolidatedTrialRecorder}
    assert type(recorder) is expected[recording]
    recorder.close()
    writer.close()


def test_make_recorder_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"recording must be one of \('files', 'batched', 'consolidated'\), "
                                         r"got recording='filez'"):
        make_recorder(str(tmp_path / "t"), "filez")
    with pytest.raises(ValueError, match="recording='consolidated' needs a BatchWriter with a results file"):
        make_recorder(str(tmp_path / "t"), "consolidated", writer=BatchWriter())
