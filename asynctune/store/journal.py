"""journal.jsonl: its kinds of line, their fields, the writer and the replay, in one module.

Every change of a trial's life is appended to the journal as one JSON line, flushed at once (a
batched run: once a second), so that a resume rebuilds the trial table after the driver was
killed at any instant. As Optuna's journal storage keeps its operation codes and their replay
together, this module holds all there is to know about the journal: the kinds of line (`Op`),
the fields each must hold (`KINDS`) and what every field may be (`FIELDS`), how a change is
written (`JournalWriter`), how a line is read and checked (`decode`, `read`) and how the lines
fold into the trial table (`replay`, `recover`). A new kind of line is added here only.

A line, format version 1:

    {"v": 1, "event": "status", "time": 1796641020.04, "trial_id": "trial_00000", "index": 0,
     "status": "RUNNING", "checkpoint": "trial_00000/checkpoint_000002",
     "restore_checkpoint": "trial_00000/checkpoint_000002", "num_failures": 0, "error": null}

A line holds the trial's whole state after the change, not a difference: replay keeps each
trial's last line, and `event` says why it changed. The config (with the resources) is written
only where it is new: on `added` and `mutated` lines, on a session's first line of the trial,
and after the config was replaced (a resume with another config); `params.json` has it too.
Paths are relative to the experiment directory.

Versions: a line without `"v"` was written before versions were recorded (asynctune up to
07715cf: version 0, the same fields, checkpoints possibly absolute paths) and reads as it is. A
line of a newer version is refused (`NewerJournal`, naming both versions), never guessed at.

Reading: a last line without its newline is torn (its writer was killed): `read` skips it,
`recover` moves it to journal.jsonl.torn. A line that is not JSON, of an unknown kind, or with a
field missing or wrong is a `JournalError` naming the file, the line and the field; `read`
raises it, `recover` moves the line to journal.jsonl.damaged with that message as a warning and
replays the rest (the trial directories hold the truth, see recovery.py).

    >>> journal = JournalWriter(experiment_dir)  # doctest: +SKIP
    >>> journal.write(Op.ADDED, trial)  # doctest: +SKIP
    >>> replay(read(experiment_dir), experiment_dir).trials["trial_00000"].config  # doctest: +SKIP
    {'lr': 0.1}
"""

from __future__ import annotations

import enum
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..core.trial import Status, Trial
from ..errors import AsynctuneError
from .format import _show, relative  # the same short rendering of a bad value as experiment.json's errors
from .jsonl import numbered_records
from .layout import dumps, open_append, repair_jsonl
from .names import JOURNAL_FILE

JOURNAL_VERSION = 1
TRIAL_ID = re.compile(r"trial_(\d{5,})")  # the only ids a journal names: each is a directory's name


class Op(str, enum.Enum):
    """Why a trial's line was written: the line's `event`."""

    ADDED = "added"  # a new trial, PENDING, with its config and resources
    STATUS = "status"  # started, paused, resumed, ended, failed for good; a new checkpoint to restore
    RETRY = "retry"  # it failed and runs again from its newest checkpoint (PENDING)
    INTERRUPTED = "interrupted"  # the experiment ended before it did: a resume restarts it (PENDING)
    MUTATED = "mutated"  # a new config (PBT's exploit), continuing from a donor's checkpoint


def _is_count(value: Any) -> bool:
    return value.__class__ is int and value >= 0  # not a bool


_STATUS_OF = {**{s.value: s for s in Status}, "TERMINATED": Status.FINISHED}  # older files' name for FINISHED
_STATUSES = ", ".join(dict.fromkeys(s.value for s in Status))


class _Field(NamedTuple):
    types: type | tuple[type, ...]  # what JSON gives for it
    test: Callable[[Any], bool] | None  # where the type is not enough
    expected: str  # for the message


# What each field may hold; null is allowed for every one a kind does not require.
FIELDS: dict[str, _Field] = {
    "v": _Field(int, _is_count, "a format version (a whole number >= 0)"),
    "event": _Field(str, None, "a kind of line"),
    "time": _Field((int, float), lambda v: v.__class__ is not bool, "a number"),
    "trial_id": _Field(str, lambda v: TRIAL_ID.fullmatch(v) is not None, "a trial id (trial_ and five or more digits)"),
    "index": _Field(int, _is_count, "a whole number >= 0"),
    "status": _Field(str, _STATUS_OF.__contains__, f"a trial status ({_STATUSES})"),
    "checkpoint": _Field(str, None, "a path"),
    "restore_checkpoint": _Field(str, None, "a path"),
    "num_failures": _Field(int, _is_count, "a whole number >= 0"),
    "error": _Field(str, None, "a string"),
    "config": _Field(dict, None, "an object"),
    "resources": _Field(dict, None, "an object"),
}
_REQUIRED = ("event", "trial_id", "status")  # by every kind
# The fields each kind must hold beyond those. Every kind is written with the trial's whole state.
KINDS: dict[Op, tuple[str, ...]] = {
    Op.ADDED: ("config",),
    Op.STATUS: (),
    Op.RETRY: (),
    Op.INTERRUPTED: (),
    Op.MUTATED: ("config",),
}
_WITH_CONFIG = frozenset(op for op, required in KINDS.items() if "config" in required)
_OP_OF = {op.value: op for op in Op}


class JournalError(AsynctuneError, ValueError):
    """A line of journal.jsonl that cannot be read: not JSON, an unknown kind, a field missing or wrong.

    Attributes:
        path: The journal.
        line: The line's number, from 1.
        field: The field at fault, or None for the whole line.
        problem: What is wrong, without the place (e.g. "field 'status' is missing").
    """

    def __init__(self, path: str, line: int, problem: str, *, field: str | None = None) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.path, self.line, self.field, self.problem = path, line, field, problem


class NewerJournal(JournalError):
    """A journal line written by a newer asynctune, in a format this one does not know."""

    def __init__(self, path: str, line: int, found: int) -> None:
        super().__init__(path, line, f"format version {found} is newer than this asynctune reads (version "
                         f"{JOURNAL_VERSION}); upgrade asynctune (pip install -U asynctune) to read it", field="v")
        self.found, self.supported = found, JOURNAL_VERSION


class Entry(NamedTuple):  # a tuple: made for every line a resume reads, at a fifth of a frozen dataclass's cost
    """One journal line, checked: a trial's state after the change `op`.

    `config` and `resources` are None where the line does not hold them (see the module's
    docstring); the checkpoints are as written (relative to the experiment directory)."""

    op: Op
    trial_id: str
    status: Status
    version: int = JOURNAL_VERSION
    line: int = 0  # where it was read; 0 for an entry made here
    time: float | None = None
    index: int | None = None
    checkpoint: str | None = None
    restore_checkpoint: str | None = None
    num_failures: int = 0
    error: str | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None


# Writing ------------------------------------------------------------------------------------------

class JournalWriter:
    """Appends each change of a trial to `<experiment_dir>/journal.jsonl`, flushed at once (with
    `flush_each=False`, by `flush()`: a batched run). A torn last line a killed driver left is
    moved to journal.jsonl.torn first, so no line is glued to it.

        >>> journal = JournalWriter(experiment_dir)  # doctest: +SKIP
        >>> journal.write(Op.STATUS, trial)  # doctest: +SKIP
    """

    def __init__(self, experiment_dir: str, *, flush_each: bool = True) -> None:
        self.experiment_dir = experiment_dir
        self._file = open_append(os.path.join(experiment_dir, JOURNAL_FILE))
        self._flush_each = flush_each
        self._journaled: dict[str, Any] = {}  # trial_id -> the config object last written for it

    def write(self, op: Op, trial: Trial) -> None:
        """Append the trial's state after `op`; raises OSError as the file does (a full disk)."""
        line = {"v": JOURNAL_VERSION, "event": op.value, "time": time.time(), "trial_id": trial.trial_id,
                "index": trial.index, "status": trial.status.value,
                "checkpoint": relative(trial.checkpoint, self.experiment_dir),
                "restore_checkpoint": relative(trial.restore_checkpoint, self.experiment_dir),
                "num_failures": trial.num_failures, "error": trial.error}
        # The config only where it is new: the most a line costs is encoding it, and a trial's
        # status changes three times or more. New: not the object this writer last wrote for the
        # trial (a mutation or a resume with another config replaces it), or a kind that needs it.
        if op in _WITH_CONFIG or self._journaled.get(trial.trial_id) is not trial.config:
            self._journaled[trial.trial_id] = trial.config
            line["config"], line["resources"] = trial.config, trial.resources
        self._file.write(dumps(line) + "\n")
        if self._flush_each:
            self._file.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# Reading ------------------------------------------------------------------------------------------

def decode(record: dict[str, Any], path: str, line: int) -> Entry:
    """The entry a journal line holds; JournalError naming `path`, `line` and the field if it is not one."""
    version = record.get("v", 0)  # no version: written before versions were recorded
    if not _is_count(version):
        raise JournalError(path, line, f"field 'v' is {_show(version)}, expected {FIELDS['v'].expected}", field="v")
    if version > JOURNAL_VERSION:
        raise NewerJournal(path, line, version)
    event = record.get("event")
    op = _OP_OF.get(event) if event.__class__ is str else None
    if op is None:
        if event is None:
            raise JournalError(path, line, "field 'event' is missing", field="event")
        raise JournalError(path, line, f"field 'event' is {_show(event)}, not a kind of line this asynctune "
                           f"knows ({', '.join(_OP_OF)})", field="event")
    for name in _REQUIRED + KINDS[op]:
        if record.get(name) is None:
            raise JournalError(path, line, f"field {name!r} is missing (a {op.value!r} line holds it)", field=name)
    for name, value in record.items():
        spec = FIELDS.get(name)  # a field this version does not know is left alone
        if spec is None or value is None:
            continue
        types, test, expected = spec
        if not isinstance(value, types) or (test is not None and not test(value)):
            raise JournalError(path, line, f"field {name!r} is {_show(value)}, expected {expected}", field=name)
    return Entry(op, record["trial_id"], _STATUS_OF[record["status"]], version, line, record.get("time"),
                 record.get("index"), record.get("checkpoint"), record.get("restore_checkpoint"),
                 record.get("num_failures") or 0, record.get("error"), record.get("config"), record.get("resources"))


def read(experiment_dir: str) -> list[Entry]:
    """Every entry of the experiment's journal, checked; [] if it has none. A torn last line is
    skipped; any other line that is not an entry raises JournalError (NewerJournal for a newer format)."""
    path = os.path.join(experiment_dir, JOURNAL_FILE)
    entries = []
    for number, text, record in numbered_records(path):
        if not text.endswith("\n"):
            break  # torn: the last line, its writer killed mid-write
        if record is None:
            if text.strip():
                raise JournalError(path, number, "not a JSON object")
            continue
        entries.append(decode(record, path, number))
    return entries


def read_intact(experiment_dir: str) -> list[Entry]:
    """Every entry of the journal that can be read, for a reader that must change nothing (the
    analysis of an experiment whose driver was killed): torn and damaged lines are skipped."""
    path = os.path.join(experiment_dir, JOURNAL_FILE)
    entries = []
    for number, text, record in numbered_records(path):
        if record is not None and text.endswith("\n"):
            try:
                entries.append(decode(record, path, number))
            except JournalError:
                continue
    return entries


def recover(experiment_dir: str) -> Replayed:
    """The journal replayed for a resume, after repairing it: a torn last line moved to
    journal.jsonl.torn, lines that are not entries to journal.jsonl.damaged (with a warning
    naming each line and field). A line of a newer format is refused (NewerJournal)."""
    path = os.path.join(experiment_dir, JOURNAL_FILE)
    entries: list[Entry] = []

    def problem(record: dict[str, Any], number: int) -> str | None:
        try:
            entries.append(decode(record, path, number))
        except NewerJournal:
            raise  # not damage: this asynctune cannot read what follows
        except JournalError as exc:
            return exc.problem
        return None

    repair_jsonl(path, problem)
    return replay(entries, experiment_dir)


# Replay -------------------------------------------------------------------------------------------

@dataclass
class Replayed:
    """The trial table as the journal left it.

    Attributes:
        trials: trial_id -> Trial, in the order the journal first named them; their status,
            config, resources, failures and error as the last line left them.
        configured: The trials some line gave a config (else only their params file has it).
    """

    trials: dict[str, Trial] = field(default_factory=dict)
    configured: set[str] = field(default_factory=set)


def replay(entries: Iterable[Entry], experiment_dir: str) -> Replayed:
    """Fold the entries, in order, into the trial table.

    Every kind of line holds the trial's whole state, so each kind is applied alike: the line
    replaces what an earlier one said. A trial first seen on a line other than `added` (the
    journal was cut at the front) is taken from that line."""
    state = Replayed()
    for entry in entries:
        trial = state.trials.get(entry.trial_id)
        if trial is None:
            trial = state.trials[entry.trial_id] = Trial(
                trial_id=entry.trial_id, config=entry.config or {}, index=trial_index(entry.trial_id),
                path=os.path.join(experiment_dir, entry.trial_id))
        if entry.config is not None:
            trial.config = entry.config
            state.configured.add(entry.trial_id)
        if entry.resources is not None:
            trial.resources = entry.resources
        trial.resources = trial.resources or {}
        trial.status, trial.num_failures, trial.error = entry.status, entry.num_failures, entry.error
    return state


def trial_index(trial_id: str) -> int:
    """The number in a trial id (trial_00012 -> 12): its place in the experiment."""
    return int(trial_id.split("_", 1)[1])
