"""store/journal.py: each kind of line written, read back and replayed; lines that are not
entries (unknown kind, missing or wrong field, torn, newer format); and a journal written by
main 07715cf (tests/unit/store/data/experiment_07715cf) replaying as main replayed it."""

from __future__ import annotations

import json
import logging
import os
import shutil

import cloudpickle
import pytest

from asynctune.core.trial import Status, Trial
from asynctune.store import journal
from asynctune.store.journal import (
    FIELDS, JOURNAL_VERSION, KINDS, JournalError, JournalWriter, NewerJournal, Op,
)
from asynctune.store.recovery import load_resume_state, recorded_history, save_run_spec

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "experiment_07715cf")


def train(config):
    pass


def _trial(tmp_path, index=0, **changes) -> Trial:
    trial = Trial(f"trial_{index:05d}", {"lr": 0.1, "layers": [8, 8]}, index=index,
                  path=str(tmp_path / f"trial_{index:05d}"), resources={"cpu": 1.0, "gpu": 0.0})
    for name, value in changes.items():
        setattr(trial, name, value)
    return trial


def _lines(tmp_path, *lines: str) -> str:
    """A journal.jsonl of exactly these lines; returns its path."""
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(lines))
    return str(path)


def _line(**fields) -> str:
    return json.dumps({"v": JOURNAL_VERSION, "event": "status", "trial_id": "trial_00000", "status": "RUNNING",
                       **fields}) + "\n"


# Each kind, written then read and replayed ----------------------------------------------------------

STATES = {  # a kind, and the state a trial is in when the controller journals it
    Op.ADDED: dict(status=Status.PENDING),
    Op.STATUS: dict(status=Status.PAUSED, checkpoint="{dir}/trial_00000/checkpoint_000004"),
    Op.RETRY: dict(status=Status.PENDING, num_failures=1, error="RuntimeError: boom",
                   checkpoint="{dir}/trial_00000/checkpoint_000002",
                   restore_checkpoint="{dir}/trial_00000/checkpoint_000002"),
    Op.INTERRUPTED: dict(status=Status.PENDING, restore_checkpoint="{dir}/trial_00000/checkpoint_000006"),
    Op.MUTATED: dict(status=Status.RUNNING, config={"lr": 0.7, "layers": [8, 8]},
                     checkpoint="{dir}/trial_00000/checkpoint_clone_000004"),
}


def test_every_kind_has_a_state_here():
    assert set(STATES) == set(Op) == set(KINDS)


@pytest.mark.parametrize("op", list(STATES), ids=[op.value for op in STATES])
def test_each_kind_round_trips_from_writer_to_replay(tmp_path, op):
    changes = {k: v.replace("{dir}", str(tmp_path)) if isinstance(v, str) and "{dir}" in v else v
               for k, v in STATES[op].items()}
    trial = _trial(tmp_path, **changes)
    writer = JournalWriter(str(tmp_path))
    writer.write(Op.STATUS, _trial(tmp_path, status=Status.RUNNING))  # a line before it (another config object)
    writer.write(op, trial)
    writer.close()
    first, entry = journal.read(str(tmp_path))
    assert (entry.op, entry.trial_id, entry.status, entry.version, entry.line) == \
        (op, "trial_00000", trial.status, JOURNAL_VERSION, 2)
    assert (entry.num_failures, entry.error, entry.index) == (trial.num_failures, trial.error, 0)
    # Paths are written relative to the experiment directory.
    assert entry.checkpoint == (os.path.relpath(trial.checkpoint, tmp_path) if trial.checkpoint else None)
    assert entry.restore_checkpoint == \
        (os.path.relpath(trial.restore_checkpoint, tmp_path) if trial.restore_checkpoint else None)
    # The config where it is new: on the kinds that always hold it, or a config object not written before.
    assert entry.config == trial.config and entry.resources == trial.resources
    replayed = journal.replay([first, entry], str(tmp_path))
    (back,) = replayed.trials.values()
    assert (back.trial_id, back.index, back.path) == ("trial_00000", 0, trial.path)
    assert (back.status, back.config, back.resources) == (trial.status, trial.config, trial.resources)
    assert (back.num_failures, back.error) == (trial.num_failures, trial.error)
    assert replayed.configured == {"trial_00000"}


def test_the_config_is_written_where_it_is_new_and_replay_keeps_the_last_one(tmp_path):
    trial = _trial(tmp_path)
    writer = JournalWriter(str(tmp_path))
    writer.write(Op.ADDED, trial)
    trial.status = Status.RUNNING
    writer.write(Op.STATUS, trial)
    trial.config = {"lr": 0.5}
    writer.write(Op.MUTATED, trial)
    writer.write(Op.STATUS, trial)
    writer.close()
    entries = journal.read(str(tmp_path))
    assert [(e.op, e.config) for e in entries] == [
        ("added", {"lr": 0.1, "layers": [8, 8]}), ("status", None), ("mutated", {"lr": 0.5}), ("status", None)]
    assert journal.replay(entries, str(tmp_path)).trials["trial_00000"].config == {"lr": 0.5}


def test_the_writer_writes_exactly_the_fields_the_schema_checks(tmp_path):
    writer = JournalWriter(str(tmp_path))
    writer.write(Op.ADDED, _trial(tmp_path))
    writer.close()
    (line,) = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert set(json.loads(line)) == set(FIELDS)  # a new field is checked on read, or the schema is stale


# Lines that are not entries -----------------------------------------------------------------------

@pytest.mark.parametrize("line, field, problem", [
    (_line(event="paused_forever"), "event", "field 'event' is \"paused_forever\", not a kind of line"),
    ('{"v": 1, "trial_id": "trial_00000", "status": "RUNNING"}\n', "event", "field 'event' is missing"),
    (_line(status=None), "status", "field 'status' is missing"),
    (_line(event="added"), "config", "field 'config' is missing (a 'added' line holds it)"),
    (_line(trial_id="../etc"), "trial_id", "field 'trial_id' is \"../etc\", expected a trial id"),
    (_line(status="DONE"), "status", "field 'status' is \"DONE\", expected a trial status"),
    (_line(num_failures="2"), "num_failures", "field 'num_failures' is \"2\", expected a whole number"),
    (_line(v=-1), "v", "field 'v' is -1, expected a format version"),
    ("[1, 2]\n", None, "not a JSON object"),
], ids=["unknown-kind", "no-kind", "no-status", "added-without-config", "id-as-path", "bad-status",
        "bad-count", "bad-version", "not-an-object"])
def test_a_line_that_is_not_an_entry_is_one_line_naming_file_line_and_field(tmp_path, line, field, problem):
    path = _lines(tmp_path, _line(), line, _line())
    with pytest.raises(JournalError) as raised:
        journal.read(str(tmp_path))
    error = raised.value
    assert (error.path, error.line, error.field) == (path, 2, field)
    assert str(error).startswith(f"{path}, line 2: {problem}") and "\n" not in str(error)


def test_a_torn_last_line_is_skipped_by_read_and_moved_aside_by_recover(tmp_path):
    path = _lines(tmp_path, _line(event="added", config={"x": 1}), _line(), '{"v": 1, "event": "sta')
    assert [e.op for e in journal.read(str(tmp_path))] == ["added", "status"]
    replayed = journal.recover(str(tmp_path))
    assert replayed.trials["trial_00000"].status is Status.RUNNING
    assert (tmp_path / "journal.jsonl.torn").read_text() == '{"v": 1, "event": "sta\n'
    assert open(path).read() == _line(event="added", config={"x": 1}) + _line()  # the next line starts afresh


def test_recover_moves_damaged_lines_aside_naming_each_and_replays_the_rest(tmp_path, caplog):
    path = _lines(tmp_path, _line(event="added", config={"x": 1}), _line(event="vanished"), "garbage\n",
                  _line(status="PAUSED"))
    with caplog.at_level(logging.WARNING, logger="asynctune.store.layout"):
        replayed = journal.recover(str(tmp_path))
    assert replayed.trials["trial_00000"].status is Status.PAUSED
    assert (tmp_path / "journal.jsonl.damaged").read_text() == "garbage\n" + _line(event="vanished")
    assert [e.op for e in journal.read(str(tmp_path))] == ["added", "status"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert path in message and "line 2: field 'event' is \"vanished\"" in message and \
        "line 3: not a JSON object" in message


def test_a_newer_format_is_refused_naming_both_versions_and_the_journal_is_left_as_it_was(tmp_path):
    text = _line(event="added", config={"x": 1}) + _line(v=JOURNAL_VERSION + 1, event="teleported")
    path = _lines(tmp_path, text)
    for read in (journal.read, journal.recover):
        with pytest.raises(NewerJournal) as raised:
            read(str(tmp_path))
        assert (raised.value.found, raised.value.supported, raised.value.line) == (JOURNAL_VERSION + 1, JOURNAL_VERSION, 2)
        assert f"format version {JOURNAL_VERSION + 1} is newer than this asynctune reads (version " \
               f"{JOURNAL_VERSION}); upgrade asynctune" in str(raised.value)
    assert open(path).read() == text and not os.path.exists(path + ".damaged")


def test_resume_refuses_a_journal_of_a_newer_format(tmp_path):
    experiment_dir = str(tmp_path / "exp")
    os.mkdir(experiment_dir, 0o700)
    save_run_spec(experiment_dir, {"metric": "loss", "mode": "min"}, cloudpickle.dumps(train), None)
    _lines(tmp_path / "exp", _line(v=JOURNAL_VERSION + 1, event="added", config={"x": 1}))
    with pytest.raises(NewerJournal, match=f"journal.jsonl, line 1: format version {JOURNAL_VERSION + 1} is newer"):
        load_resume_state(experiment_dir)


# A journal written by main 07715cf ---------------------------------------------------------------

@pytest.fixture
def old_experiment(tmp_path) -> str:
    """The fixture directory, copied, with a run_spec.pkl signed by this user (resume needs one)."""
    experiment_dir = str(tmp_path / "exp")
    shutil.copytree(FIXTURE, experiment_dir, ignore=shutil.ignore_patterns("*.md", "expected_*"))
    os.chmod(experiment_dir, 0o700)
    save_run_spec(experiment_dir, {"metric": "score", "mode": "max"}, cloudpickle.dumps(train), None)
    return experiment_dir


def _expected() -> dict:
    with open(os.path.join(FIXTURE, "expected_resume_state.json")) as f:
        return json.load(f)


def test_an_old_journal_reads_as_version_0_with_every_kind_it_wrote(old_experiment):
    entries = journal.read(old_experiment)
    assert {e.version for e in entries} == {0}
    assert {e.op for e in entries} == set(Op)
    replayed = journal.replay(entries, old_experiment)
    expected = _expected()["trials"]
    assert [(t.trial_id, t.config, t.num_failures, t.error) for t in replayed.trials.values()] == \
        [(t["trial_id"], t["config"], t["num_failures"], t["error"]) for t in expected]
    assert [t.status for t in replayed.trials.values()] == [Status.RUNNING, Status.RUNNING]  # as the kill left them


def test_an_old_experiment_resumes_exactly_as_main_resumed_it(old_experiment):
    state = load_resume_state(old_experiment)
    expected = _expected()
    rel = lambda path: None if path is None else os.path.relpath(path, old_experiment)  # noqa: E731
    assert (state.status, state.time_used_s) == (expected["status"], expected["time_used_s"])
    assert [{"trial_id": t.trial_id, "index": t.index, "status": t.status.value, "config": t.config,
             "resources": t.resources, "num_failures": t.num_failures, "error": t.error,
             "checkpoint": rel(t.checkpoint), "checkpoint_iteration": t.checkpoint_iteration,
             "restore_checkpoint": rel(t.restore_checkpoint), "restore_iteration": t.restore_iteration,
             "num_results": t.num_results, "metric_best": t.metric_best,
             "last_iteration": (t.last_result or {}).get("training_iteration")} for t in state.trials] == expected["trials"]
    assert [f"{t.trial_id}@{r['training_iteration']}" for t, r in recorded_history(state.trials)] == expected["history"]


def test_an_old_journal_alone_gives_every_config_when_the_params_files_are_gone(old_experiment):
    for trial_id in ("trial_00000", "trial_00001"):
        os.unlink(os.path.join(old_experiment, trial_id, "params.json"))
    state = load_resume_state(old_experiment)
    assert [t.config for t in state.trials] == [t["config"] for t in _expected()["trials"]]
