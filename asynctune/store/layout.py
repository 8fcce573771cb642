"""The experiment directory: what is kept on disk, written so a killed driver loses nothing.

    <storage_path>/<name>/
      experiment.json              spec, status and the trial table (rewritten atomically)
      <trial_id>/params.json       the trial's config, readable (objects as their repr)
      <trial_id>/params.pkl        the same config with its types (cloudpickle, private 0600),
                                   when JSON would lose them: what a resumed trial gets
      <trial_id>/result.jsonl      every result, appended and flushed as it arrives
      <trial_id>/progress.csv      the same as a table (columns of the first result), flushed
                                   twice a second
      <trial_id>/checkpoint_<iteration>/, stdout.txt, stderr.txt, error.txt
      results.jsonl                a simulation's, recording="consolidated": every trial's
                                   results in one file, and no trial directory but for checkpoints

How often they are written is the executor's `recording` (store/recording.py): every result at once
("files", every real executor), in batches ("batched"), or, for a simulation, every trial's
results in one results.jsonl at the top, with no trial directories ("consolidated").

Everything is private to the user: directories 0700, files 0600 (see private_files.py).
Every .jsonl line is strict JSON: a float that is NaN or infinite is written as null (pandas
reads it as NaN; asynctune treats it as not reported). Files from older versions with bare
NaN/Infinity still read. A line torn by a killed driver is moved to `<file>.torn` when the
file is next opened for appending, so the next line never joins it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import cloudpickle
import numpy as np

from ..errors import StorageFull, UnsafeFileError, is_disk_full
from .private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, create_private, makedirs_private, open_private
from .signing import load_signed_pickle, sign
from . import checkpoints
from .jsonl import numbered_records
from .names import is_checkpoint_name

logger = logging.getLogger(__name__)

# The names are store/names.py's; imported here because the store's modules use them from layout.
from .names import (DECISIONS_FILE, ERROR_FILE, EXPERIMENT_FILE, JOURNAL_FILE, PARAMS_FILE,  # noqa: F401
                    PARAMS_PICKLE_FILE, PROGRESS_FILE, RESULT_FILE, RESULTS_FILE, RESULTS_REWOUND_FILE,
                    REWOUND_FILE, RUN_SPEC_FILE, SEARCHER_STATE_FILE)

TORN_SUFFIX = ".torn"
DAMAGED_SUFFIX = ".damaged"


def to_jsonable(value: Any) -> Any:
    """numpy scalars and arrays, sets and other objects become something JSON can hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    return repr(value)


_ENCODER = json.JSONEncoder(default=to_jsonable, allow_nan=False)
# json's C encoder made once (json.dumps makes one per call): a third less time per result line.
# Without the check for circular references, which Python's recursion limit stops as well.
_C_ENCODE = None if c_make_encoder is None else c_make_encoder(
    None, to_jsonable, encode_basestring_ascii, None, ": ", ", ", False, False, False)


def dumps(value: Any) -> str:
    """Strict JSON (NaN and infinities become null, see the module's docstring)."""
    try:
        if _C_ENCODE is not None and value.__class__ is dict:
            try:
                return "".join(_C_ENCODE(value, 0))
            except RecursionError:
                raise ValueError("Circular reference detected (or a value nested too deep)") from None
        return _ENCODER.encode(value)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        return _ENCODER.encode(_finite(value))


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (numpy's too) replaced by None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_finite(v) for v in value.tolist()]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str, value: Any, *, indent: int | None = 1) -> None:
    """Write to a temporary file and rename it over the old one: readers never see half a file.
    (indent=None is several times faster: json's C encoder does not indent.)"""
    write_atomic(path, _json_text(value, indent).encode())


def write_snapshot_atomic(path: str, snapshot: dict[str, Any]) -> None:
    """experiment.json: its fields, then one line per trial. Each trial is encoded by json's C
    encoder (indenting is several times slower, and the file is rewritten as the run goes on);
    a line per trial still reads well and greps well."""
    head = dumps({k: v for k, v in snapshot.items() if k != "trials"})
    if "trials" not in snapshot:
        text = head
    else:
        rows = ",\n".join(dumps(trial) for trial in snapshot["trials"] or ())
        opening = head[:-1] + (", " if head != "{}" else "")  # the fields, without the closing brace
        text = opening + '"trials": [' + ("\n" + rows + "\n" if rows else "") + "]}"
    write_atomic(path, (text + "\n").encode())


def _json_text(value: Any, indent: int | None) -> str:
    try:
        return json.dumps(value, default=to_jsonable, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=to_jsonable, indent=indent, allow_nan=False)


def write_atomic(path: str, data: bytes, *, new: bool = False) -> None:
    """`data` as the file `path`, whole or not at all (a private temporary file renamed over it).
    `new`: the directory was made just now, so no other writer is there: the temporary file
    gets a fixed name and is created with one system call (mkstemp's random name costs more)."""
    if new:
        tmp = path + ".tmp"
        fd = create_private(tmp)
    else:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")  # created 0600
    try:
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare_experiment_dir(storage_path: str, name: str) -> str:
    """Create the experiment directory, with a clear error when it cannot be written."""
    root = os.path.abspath(os.path.expanduser(storage_path))
    path = os.path.join(root, name)
    try:
        makedirs_private(root)
        makedirs_private(path)
        try:
            os.chmod(path, PRIVATE_DIR_MODE)  # an experiment made by an older version, resumed
        except PermissionError:
            pass  # not ours: the pickles in it will be refused when loaded
        probe = os.path.join(path, f".write-test-{os.getpid()}")  # another run may probe at the same time
        with open_private(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as exc:
        if is_disk_full(exc):
            raise StorageFull(os.fsdecode(exc.filename) if exc.filename else path, path) from exc
        if os.path.exists(root) and not os.path.isdir(root):
            raise ValueError(f"storage_path {storage_path!r} is a file, not a directory: pass a directory to hold "
                             "experiments (it is made if missing)") from exc
        raise ValueError(f"storage_path {storage_path!r} cannot be written: {exc.strerror or exc}") from exc
    return path


# What a run writes at the top of its directory before its first trial (the trials' own files
# are in their directories).
_RUN_FILES = (RUN_SPEC_FILE, EXPERIMENT_FILE, JOURNAL_FILE, SEARCHER_STATE_FILE, RESULTS_FILE, DECISIONS_FILE)


def trial_ids(experiment_dir: str) -> set[str]:
    """The trials a run in this directory got as far as creating: trial directories (with a
    params.json, a result.jsonl or a checkpoint: a consolidated simulation's trial has only
    those), trials named in the journal or in a consolidated results.jsonl."""
    found = {str(r["trial_id"]) for name in (JOURNAL_FILE, RESULTS_FILE)
             for r in read_jsonl(os.path.join(experiment_dir, name)) if r.get("trial_id")}
    try:
        entries = list(os.scandir(experiment_dir))
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir() and (any(os.path.exists(os.path.join(entry.path, f)) for f in (PARAMS_FILE, RESULT_FILE))
                               or any(is_checkpoint_name(name) for name in os.listdir(entry.path))):
            found.add(entry.name)
    return found


def check_name_free(experiment_dir: str) -> None:
    """Let a new run use `experiment_dir` unless a run there created a trial.

    A run that failed at start-up (a missing package, an executor that could not start) leaves
    its run_spec.pkl and perhaps an experiment.json with no trial: nothing to resume or lose, so
    its files are removed and the name is free again."""
    found = trial_ids(experiment_dir)
    if found:
        raise ValueError(f"run: {experiment_dir} already holds an experiment; pass resume=True to continue it "
                         f"({len(found)} trial{'s' if len(found) != 1 else ''}), or another name=")
    for entry in os.scandir(experiment_dir):
        if entry.is_file() and (entry.name in _RUN_FILES or entry.name.startswith("events.out.tfevents.")):
            os.unlink(entry.path)


def latest_checkpoint(trial_dir: str, *, max_iteration: int | None = None) -> tuple[str, int, float] | None:
    """The newest complete checkpoint in a trial directory: (path, iteration, time_total_s).

    A checkpoint is complete once its metadata file exists (it is written last). With
    `max_iteration`, newer checkpoints are ignored: a worker writes a checkpoint before it
    sends the result it belongs to, so a killed driver can leave one whose result it never
    recorded, and restoring from it would lose that result."""
    best: tuple[str, int, float] | None = None
    try:
        names = os.listdir(trial_dir)
    except FileNotFoundError:
        return None
    for name in names:
        if not is_checkpoint_name(name):
            continue
        path = os.path.join(trial_dir, name)
        try:
            with open(os.path.join(path, ".asynctune.json")) as f:
                meta = json.load(f)
        except OSError:
            continue
        except ValueError:
            meta = None
        taken_at = _taken_at(meta)
        if taken_at is None:  # damaged (its writer writes it whole, last): what it holds is unknown
            logger.warning("%s: its .asynctune.json is damaged; this checkpoint is not restored", path)
            continue
        iteration, time_total = taken_at
        if max_iteration is not None and iteration > max_iteration:
            continue
        missing = checkpoints.incomplete(path, meta.get("files"))
        if missing is not None:
            logger.warning("%s is incomplete (%s: copied part way?); this checkpoint is not restored", path, missing)
            continue
        if best is None or iteration > best[1] or (iteration == best[1] and os.path.getmtime(path) > os.path.getmtime(best[0])):
            best = (path, iteration, time_total)
    return best


def _taken_at(meta: Any) -> tuple[int, float] | None:
    """(iteration, time_total_s) from a checkpoint's metadata; None if it holds no such thing."""
    if not isinstance(meta, dict):
        return None
    iteration, time_total = meta.get("iteration", 0), meta.get("time_total_s", 0.0)
    if iteration.__class__ is not int or iteration < 0 or time_total.__class__ not in (int, float):
        return None
    return iteration, float(time_total)


def read_csv_header(path: str) -> list[str] | None:
    try:
        with open(path, newline="") as f:
            header = f.readline()
    except OSError:
        return None
    return next(csv.reader([header])) if header.strip() else None


def is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, np.generic)) or value is None


def read_results(trial_dir: str) -> list[dict[str, Any]]:
    """Every result of a trial; a half-written last line (driver killed mid-write) is skipped."""
    return read_jsonl(os.path.join(trial_dir, RESULT_FILE))


def copy_checkpoint(source: str, trial_dir: str, label: str) -> str:
    """Copy another trial's checkpoint into this trial's directory (PBT's exploit), atomically."""
    return checkpoints.clone(source, trial_dir, label)


def remove_checkpoint(path: str) -> None:
    checkpoints.discard(path)


def group_by_trial(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records (a consolidated results.jsonl's lines, decisions) by their trial_id, in order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(str(record.get("trial_id")), []).append(record)
    return grouped


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Every JSON object line of a file, [] if it is missing; a line that is not one (torn by a
    killed driver, damaged) is skipped: check_jsonl() finds them, recovery repairs the file."""
    return check_jsonl(path)[0]


def check_jsonl(path: str) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """A JSONL file's object lines, and its other lines as (line number, text)."""
    records: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    for number, line, record in numbered_records(path):
        if record is not None:
            records.append(record)
        elif line.strip():
            bad.append((number, line))
    return records, bad


def repair_jsonl(path: str, problem: Callable[[dict[str, Any], int], str | None] | None = None) -> list[dict[str, Any]]:
    """The records of a .jsonl file, after moving a torn last line to `<file>.torn` and every
    other line that is not a valid record to `<file>.damaged` (kept for inspection), with a
    warning naming each line and what is wrong with it.

    `problem(record, line_number)` says what is wrong with a record, None if nothing; it may
    raise instead, to refuse the whole file (the file is then left as it was, but for a torn tail).

        >>> repair_jsonl(path, lambda record, line: None if record.get("a", 0) >= 0 else "'a' < 0")  # doctest: +SKIP
    """
    move_torn_tail(path)
    records: list[dict[str, Any]] = []
    kept: list[str] = []
    unreadable: list[tuple[int, str, str]] = []
    invalid: list[tuple[int, str, str]] = []
    for number, text, record in numbered_records(path):
        if record is None:
            if text.strip():
                unreadable.append((number, text, "not a JSON object"))
            continue
        reason = None if problem is None else problem(record, number)
        if reason is None:
            records.append(record)
            kept.append(text)
        else:
            invalid.append((number, text, reason))
    bad = unreadable + invalid  # the lines that are not JSON first, then the invalid records
    if bad:
        with open_private(path + DAMAGED_SUFFIX, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(text if text.endswith("\n") else text + "\n" for _, text, _ in bad)
        write_atomic(path, "".join(kept).encode("utf-8", "surrogateescape"))
        logger.warning("%s held %d line(s) that are not valid records; moved them to %s: %s", path, len(bad),
                       path + DAMAGED_SUFFIX, "; ".join(f"line {n}: {why}" for n, _, why in sorted(bad)))
    return records


def open_append(path: str, *, newline: str | None = None) -> Any:
    """Open a line-per-record file (private) for appending, after moving a torn last line (a
    writer killed mid-line) to `<path>.torn`: appended to, the next line would be glued onto it."""
    fd = open_append_fd(path)
    try:
        return os.fdopen(fd, "a", buffering=1 << 16, newline=newline, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def open_append_fd(path: str, *, new: bool = False) -> int:
    """open_append() as a file descriptor, for one write(2) per record. `new`: the file must not
    exist yet (its directory was made just now), so there is no torn tail to look for: one
    system call instead of two, which counts on a file system where creating a file is slow."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    if new:
        return os.open(path, flags | os.O_EXCL, PRIVATE_FILE_MODE)  # 0600 under asynctune's umask
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o777 != PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)  # a file left by an older version, or made under another umask
        _cut_torn_tail(fd, path, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (os.write may write less, e.g. when interrupted)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


def move_torn_tail(path: str) -> str | None:
    """If `path` does not end with a newline, cut its last partial line off into
    `<path>.torn` (kept, never deleted) and return that text; None if nothing was torn."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        return _cut_torn_tail(fd, path, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, path: str, size: int) -> str | None:
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    start = size
    while start > 0:  # find the last newline, reading backwards in blocks
        block = min(start, 1 << 16)
        chunk = os.pread(fd, block, start - block)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            start = start - block + cut + 1
            break
        start -= block
    tail = os.pread(fd, size - start, start)
    with open_private(path + TORN_SUFFIX, "ab") as torn:
        torn.write(tail + b"\n")
    os.ftruncate(fd, start)
    text = tail.decode(errors="replace")
    logger.warning("%s ended with a torn line (its writer was killed mid-write); moved it to %s: %.80r",
                   path, path + TORN_SUFFIX, text)
    return text


def write_params(trial_dir: str, config: dict[str, Any], *, indent: int | None = 1, new: bool = False) -> None:
    """params.json for people and tools; params.pkl (0600) keeps the types for a resume, when
    JSON would not (a plain-JSON config reads back from params.json exactly: one file less).
    indent=None (one line) is what a batched run writes: json's C encoder does not indent.
    `new`: the trial's directory was made just now, so neither file is there yet."""
    path = os.path.join(trial_dir, PARAMS_FILE)
    if new:
        write_atomic(path, _json_text(config, indent).encode(), new=True)
    else:
        write_json_atomic(path, config, indent=indent)
    pickled = os.path.join(trial_dir, PARAMS_PICKLE_FILE)
    if is_plain_json(config):
        if new:
            return  # no older pickle to remove
        try:
            os.unlink(pickled)  # a mutation may have made a config plain: the old pickle must not win
        except FileNotFoundError:
            pass
        return
    try:
        data = cloudpickle.dumps(config)
    except Exception as exc:  # noqa: BLE001  the config reached the trial, so this is rare
        logger.warning("%s: the config cannot be pickled (%s); a resume reads it from params.json",
                       trial_dir, exc)
        try:
            os.unlink(pickled)  # an older config's pickle must not come back on resume
        except FileNotFoundError:
            pass
        return
    write_atomic(pickled, sign(data))


def is_plain_json(value: Any) -> bool:
    """Whether JSON gives `value` back exactly, types included (no tuples, numpy, NaN, ...)."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and is_plain_json(v) for k, v in value.items())
    if kind is list:
        return all(is_plain_json(v) for v in value)
    if kind is float:
        return math.isfinite(value)
    return kind in (str, int, bool) or value is None


def read_typed_params(trial_dir: str) -> dict[str, Any] | None:
    """A trial's config with the types JSON loses (tuples, classes, numpy values): its
    params.pkl when there is one, signed with this user's key and loadable here; else None, and
    params.json's (or experiment.json's) view stands. For readers: never raises."""
    path = os.path.join(trial_dir, PARAMS_PICKLE_FILE)
    if not os.path.exists(path):  # the config is plain JSON: nothing is lost
        return None
    try:
        config = load_signed_pickle(path, loads=cloudpickle.loads)
    except Exception as exc:  # noqa: BLE001  another user's key, a class not importable here, damage
        logger.debug("%s: keeping the config as JSON shows it (%s: %s)", path, type(exc).__name__, exc)
        return None
    return config if isinstance(config, dict) else None


def read_params(trial_dir: str) -> dict[str, Any] | None:
    """A trial's config with its types: params.pkl, else params.json (older directories);
    None if neither can be read."""
    try:
        config = load_signed_pickle(os.path.join(trial_dir, PARAMS_PICKLE_FILE), loads=cloudpickle.loads)
        if isinstance(config, dict):
            return config
    except FileNotFoundError:
        pass
    except UnsafeFileError:
        raise  # never unpickled, never silently replaced: the user decides
    except Exception as exc:  # noqa: BLE001  unreadable: params.json is the fallback
        logger.warning("%s is unreadable (%s: %s); using params.json", os.path.join(trial_dir, PARAMS_PICKLE_FILE),
                       type(exc).__name__, exc)
    try:
        with open(os.path.join(trial_dir, PARAMS_FILE)) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level, keys joined by "/": {"net": {"width": 8}} -> {"net/width": 8}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_config(value, name + "/"))
        else:
            out[name] = value
    return out
