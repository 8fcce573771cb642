"""The experiment directory: what is kept on disk, written so a killed driver loses nothing.

    <storage_path>/<name>/
      experiment.json              spec, status and the trial table (rewritten atomically)
      <trial_id>/params.json       the trial's config
      <trial_id>/result.jsonl      every result, appended and flushed as it arrives
      <trial_id>/progress.csv      the same as a table (columns of the first result)
      <trial_id>/checkpoint_<iteration>/, stdout.txt, stderr.txt, error.txt
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from typing import Any

import numpy as np

EXPERIMENT_FILE = "experiment.json"
RESULT_FILE = "result.jsonl"
PROGRESS_FILE = "progress.csv"
PARAMS_FILE = "params.json"
ERROR_FILE = "error.txt"


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


def dumps(value: Any) -> str:
    return json.dumps(value, default=to_jsonable)


def write_json_atomic(path: str, value: Any) -> None:
    """Write to a temporary file and rename it over the old one: readers never see half a file."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(value, default=to_jsonable, indent=1))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare_experiment_dir(storage_path: str, name: str) -> str:
    """Create the experiment directory, with a clear error when it cannot be written."""
    path = os.path.join(os.path.abspath(os.path.expanduser(storage_path)), name)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"storage_path {storage_path!r} cannot be written: {exc.strerror or exc}") from exc
    return path


class TrialRecorder:
    """Appends a trial's results to result.jsonl and progress.csv, flushed each time."""

    def __init__(self, trial_dir: str) -> None:
        self.trial_dir = trial_dir
        os.makedirs(trial_dir, exist_ok=True)
        self._json = open(os.path.join(trial_dir, RESULT_FILE), "a", buffering=1 << 16)
        csv_path = os.path.join(trial_dir, PROGRESS_FILE)
        self._columns: list[str] | None = _read_csv_header(csv_path)
        self._csv = open(csv_path, "a", buffering=1 << 16, newline="")

    def write_params(self, config: dict[str, Any]) -> None:
        write_json_atomic(os.path.join(self.trial_dir, PARAMS_FILE), config)

    def record(self, result: dict[str, Any]) -> None:
        self._json.write(dumps(result) + "\n")
        self._json.flush()
        if self._columns is None:
            self._columns = [k for k, v in result.items() if _is_scalar(v)]
            self._csv.write(_csv_line(self._columns))
        self._csv.write(_csv_line([_csv_value(result.get(k, "")) for k in self._columns]))
        self._csv.flush()

    def write_error(self, attempt: int, error: str, traceback: str) -> None:
        with open(os.path.join(self.trial_dir, ERROR_FILE), "a") as f:
            f.write(f"--- attempt {attempt}: {error}\n{traceback}\n")

    def close(self) -> None:
        self._json.close()
        self._csv.close()


def _read_csv_header(path: str) -> list[str] | None:
    try:
        with open(path, newline="") as f:
            header = f.readline()
    except OSError:
        return None
    return next(csv.reader([header])) if header.strip() else None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, np.generic)) or value is None


def _csv_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if _is_scalar(value) else ""


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def read_results(trial_dir: str) -> list[dict[str, Any]]:
    """Every result of a trial; a half-written last line (driver killed mid-write) is skipped."""
    path = os.path.join(trial_dir, RESULT_FILE)
    results = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    results.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return results


def copy_checkpoint(source: str, trial_dir: str, label: str) -> str:
    """Copy another trial's checkpoint into this trial's directory (PBT's exploit)."""
    target = os.path.join(trial_dir, label)
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def remove_checkpoint(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
