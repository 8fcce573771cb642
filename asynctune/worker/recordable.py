"""Is a result recordable? Checked in the trial, at report(), so that a value that cannot travel
or be written is named there: its key's path, its type, and what to report instead.

A result travels to the driver pickled and is written as one JSON line (store/layout.py). What
can be recorded: None, bool, int, float, str; numpy scalars and arrays; lists, tuples and sets
of recordable values; dicts whose keys are str (or, nested, int, float, bool or None, which
JSON writes as strings) and whose values are recordable, at most `MAX_DEPTH` levels deep and
without cycles; paths; and the standard library's value types (Decimal, Fraction, datetime,
date, time, timedelta, UUID, Enum members), which are written as their repr. Anything else (a
lock, an open file, an instance of the trainable's own class, a tensor) is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32

_PLAIN = (str, int, float, bool, type(None))
# The standard library's value types, by module (importing them would slow every worker's start).
_VALUE_MODULES = frozenset({"decimal", "_decimal", "_pydecimal", "fractions", "datetime", "uuid"})
_KEY_TYPES = (str, int, float, bool, type(None))
RECORDABLE = ("report numbers, strings, booleans, None, or lists and dicts of them with string keys "
        "(e.g. float(x), x.item() for a tensor or numpy value, str(x))")


class UnrecordableResult(TypeError):
    """A reported value or key cannot be recorded; the message names its path and type."""


def check_result(result: Mapping[str, Any]) -> None:
    """Raise UnrecordableResult naming the first value or key that cannot be recorded."""
    for key, value in result.items():
        if key.__class__ is not str:
            raise UnrecordableResult(
                f"report(): the key {key!r} is a {_type_name(key)}; result keys must be strings: {RECORDABLE}")
        if value.__class__ in _PLAIN:
            continue  # the usual case: a number
        _check(value, f"[{key!r}]", 1, set())


def _check(value: Any, path: str, depth: int, parents: set[int]) -> None:
    if isinstance(value, (*_PLAIN, enum.Enum)) or type(value).__module__ in _VALUE_MODULES \
            or hasattr(value, "__fspath__"):
        return
    if _is_numpy(value):
        if getattr(value, "dtype", None) is not None and value.dtype.kind == "O":
            for i, item in enumerate(value.ravel().tolist()):
                _check(item, f"{path}[{i}]", depth + 1, parents)
        return
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if id(value) in parents:
            raise UnrecordableResult(f"report(): result{path} contains itself (a cycle); {RECORDABLE}")
        if depth >= MAX_DEPTH:
            shown = path if len(path) <= 80 else path[:80] + "..."
            raise UnrecordableResult(f"report(): result{shown} is nested more than {MAX_DEPTH} levels deep; "
                                     f"{RECORDABLE}, nested at most {MAX_DEPTH} levels")
        parents.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, _KEY_TYPES):
                    raise UnrecordableResult(
                        f"report(): result{path} has the key {key!r}, a {_type_name(key)}; keys must be strings: {RECORDABLE}")
                _check(item, f"{path}[{key!r}]", depth + 1, parents)
        else:
            for i, item in enumerate(value):
                _check(item, f"{path}[{i}]", depth + 1, parents)
        parents.discard(id(value))
        return
    raise UnrecordableResult(f"report(): result{path} is a {_type_name(value)}, which cannot be recorded; {RECORDABLE}")


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" or type(value).__module__.startswith("numpy.")


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def is_number(value: Any) -> bool:
    """Whether `value`, as a metric, is recorded as a number (None and NaN are 'not reported')."""
    if value is None or isinstance(value, (int, float)):
        return True
    return _is_numpy(value) and getattr(value, "dtype", None) is not None and value.dtype.kind in "iuf" \
        and getattr(value, "ndim", 1) == 0
