"""experiment.json: its format version, its validation on read, and the paths in it kept relative.

`FORMAT_VERSION` is written into every experiment.json. A file without one was written before
versions were recorded (version 0): it still reads, and the absolute paths it holds are rebased
onto where the experiment is now. A file from a newer asynctune is refused, naming both
versions, rather than read as something it is not. A damaged file (not JSON, `[]`, `null`, a
field of the wrong type) raises `ExperimentFileError`: one line naming the file and the field.

Paths inside the experiment (a trial's directory, its checkpoint, a PBT donor's checkpoint) are
written relative to the experiment directory and resolved against the directory the file is read
from, so an experiment moved (`mv`) or copied (`cp -r`) reads its own files where it is now.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable
from typing import Any

from ..errors import AsynctuneError
from .names import EXPERIMENT_FILE
from .paths import checked

FORMAT_VERSION = 1


class ExperimentFileError(AsynctuneError, ValueError):
    """An experiment.json that cannot be read: damaged, or written by a newer asynctune.

    Attributes:
        path: The file.
        field: The field at fault (e.g. "trials[3].status"), or None for the whole file.
    """

    def __init__(self, path: str, problem: str, *, field: str | None = None) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.field = path, field


class NewerFormat(ExperimentFileError):
    """experiment.json was written by a newer asynctune, in a format this one does not know."""

    def __init__(self, path: str, found: int) -> None:
        super().__init__(path, f"format version {found} is newer than this asynctune reads (version {FORMAT_VERSION}); "
                         "upgrade asynctune (pip install -U asynctune) to read it", field="format_version")
        self.found, self.supported = found, FORMAT_VERSION


def read_experiment_file(experiment_dir: str) -> dict[str, Any]:
    """experiment.json of `experiment_dir`, checked, with its paths resolved against where it is now.

    Raises FileNotFoundError if there is none, ExperimentFileError if it is damaged or newer."""
    path = checked(experiment_dir, os.path.join(experiment_dir, EXPERIMENT_FILE))  # no link out of the experiment
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise ExperimentFileError(path, "is a directory, not a file") from None
    try:
        state = json.loads(data)
    except ValueError as exc:
        raise ExperimentFileError(path, f"corrupted, not valid JSON ({exc})") from None
    check_experiment(state, path)
    return _resolved(state, experiment_dir)


def check_experiment(state: Any, path: str) -> None:
    """Raise ExperimentFileError naming the first field of `state` that is not what it should be."""
    if not isinstance(state, dict):
        raise ExperimentFileError(path, f"expected a JSON object, found {_kind(state)}")
    version = state.get("format_version", 0)
    if not _is_int(version) or version < 0:
        raise ExperimentFileError(path, f"field 'format_version' is {_show(version)}, expected a whole number >= 0",
                                  field="format_version")
    if version > FORMAT_VERSION:
        raise NewerFormat(path, version)
    _check_fields(state, _TOP, path, "")
    for position, trial in enumerate(state.get("trials") or []):
        where = f"trials[{position}]"
        if not isinstance(trial, dict):
            raise ExperimentFileError(path, f"field {where!r} is {_kind(trial)}, expected an object", field=where)
        if "trial_id" not in trial:
            raise ExperimentFileError(path, f"field '{where}.trial_id' is missing", field=f"{where}.trial_id")
        _check_fields(trial, _TRIAL, path, where + ".")


def to_disk(snapshot: dict[str, Any], experiment_dir: str) -> dict[str, Any]:
    """`snapshot` as experiment.json holds it: with its format version, paths relative.
    Changes `snapshot` (made afresh for each save) but not the lists and dicts the trials hold."""
    snapshot["format_version"] = FORMAT_VERSION
    base = experiment_dir.rstrip(os.sep) + os.sep
    for trial in snapshot.get("trials") or ():
        for key in ("path", "checkpoint"):
            value = trial.get(key)
            if value.__class__ is str and value.startswith(base):
                trial[key] = value[len(base):]
        if trial.get("lineage"):
            trial["lineage"] = [_relative_step(step, base) for step in trial["lineage"]]
    return snapshot


def relative(path: str | None, experiment_dir: str) -> str | None:
    """`path` relative to `experiment_dir` if it lies inside it, else unchanged."""
    base = experiment_dir.rstrip(os.sep) + os.sep
    if path.__class__ is str and path.startswith(base):  # type: ignore[union-attr]
        return path[len(base):]  # type: ignore[index]
    return path


def _relative_step(step: Any, base: str) -> Any:
    value = step.get("donor_checkpoint") if isinstance(step, dict) else None
    if isinstance(value, str) and value.startswith(base):
        return {**step, "donor_checkpoint": value[len(base):]}
    return step


def _resolved(state: dict[str, Any], experiment_dir: str) -> dict[str, Any]:
    """Paths made absolute again, at the experiment's current place. A version 0 file holds
    absolute paths of wherever the experiment was written: those are rebased here."""
    experiment_dir = os.path.abspath(experiment_dir)
    old_base = None
    for trial in state.get("trials") or ():
        path = trial.get("path")
        if isinstance(path, str) and os.path.isabs(path) and os.path.basename(path) == trial["trial_id"]:
            old_base = os.path.dirname(path) + os.sep
            break

    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        if not os.path.isabs(value):
            return os.path.join(experiment_dir, value)
        if old_base is not None and value.startswith(old_base):
            return os.path.join(experiment_dir, value[len(old_base):])
        return value

    for trial in state.get("trials") or ():
        trial["path"] = resolve(trial.get("path")) or os.path.join(experiment_dir, str(trial["trial_id"]))
        if trial.get("checkpoint"):
            trial["checkpoint"] = resolve(trial["checkpoint"])
        for step in trial.get("lineage") or ():
            if isinstance(step, dict) and step.get("donor_checkpoint"):
                step["donor_checkpoint"] = resolve(step["donor_checkpoint"])
    return state


# What each field must be (None is allowed for every optional one).
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_names(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _is_status(value: Any) -> bool:
    from ..core.trial import Status  # the one vocabulary, wherever it is defined

    if not isinstance(value, str):
        return False
    try:
        Status(value)  # older files' "TERMINATED" reads too
    except ValueError:
        return False
    return True


_Check = tuple[Callable[[Any], bool], str, bool]  # test, what is expected, required
_TOP: dict[str, _Check] = {
    "name": (lambda v: isinstance(v, str), "a string", False),
    "status": (lambda v: isinstance(v, str), "a string", False),
    "metric": (_is_names, "a name or a list of names", False),
    "mode": (_is_names, '"min", "max" or a list of them', False),
    "trainable": (lambda v: isinstance(v, str), "a string", False),
    "start_time": (_is_number, "a number", False),
    "time_used_s": (_is_number, "a number", False),
    "time_budget_s": (_is_number, "a number", False),
    "num_samples": (_is_int, "a whole number", False),
    "searcher": (lambda v: isinstance(v, str), "a string", False),
    "scheduler": (lambda v: isinstance(v, str), "a string", False),
    "stopping": (lambda v: isinstance(v, str), "a string", False),
    "trials": (lambda v: isinstance(v, list), "a list", False),
}
_TRIAL: dict[str, _Check] = {
    "trial_id": (lambda v: isinstance(v, str) and v != "", "a non-empty string", True),
    "index": (_is_int, "a whole number", False),
    "status": (_is_status, "a trial status (PENDING, RUNNING, PAUSED, FINISHED, EARLY_STOPPED, ERROR)", False),
    "config": (lambda v: isinstance(v, dict), "an object", False),
    "path": (lambda v: isinstance(v, str), "a string", False),
    "num_results": (_is_int, "a whole number", False),
    "last_result": (lambda v: isinstance(v, dict), "an object", False),
    "metric_best": (_is_number, "a number", False),
    "checkpoint": (lambda v: isinstance(v, str), "a string", False),
    "checkpoint_iteration": (_is_int, "a whole number", False),
    "checkpoint_time_total": (_is_number, "a number", False),
    "error": (lambda v: isinstance(v, str), "a string", False),
    "num_failures": (_is_int, "a whole number", False),
    "resources": (lambda v: isinstance(v, dict), "an object", False),
    "start_time": (_is_number, "a number", False),
    "end_time": (_is_number, "a number", False),
    "lineage": (lambda v: isinstance(v, list), "a list", False),
}


def _check_fields(record: dict[str, Any], checks: dict[str, _Check], path: str, prefix: str) -> None:
    for key, (test, expected, required) in checks.items():
        value = record.get(key)
        if value is None:
            if required:
                raise ExperimentFileError(path, f"field '{prefix}{key}' is missing", field=prefix + key)
            continue
        if not test(value):
            raise ExperimentFileError(path, f"field '{prefix}{key}' is {_show(value)}, expected {expected}",
                                      field=prefix + key)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."
