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

_PLAIN = frozenset({str, int, float, bool, type(None)})
# The standard library's value types, by module (importing them would slow every worker's start).
_VALUE_MODULES = frozenset({"decimal", "_decimal", "_pydecimal", "fractions", "datetime", "uuid"})
_KEY_TYPES = (str, int, float, bool, type(None))
_SEQUENCES = frozenset({list, tuple, set, frozenset})
_SEQUENCES_ABC = (list, tuple, set, frozenset)  # and their subclasses (a namedtuple)
RECORDABLE = ("report numbers, strings, booleans, None, or lists and dicts of them with string keys "
              "(e.g. float(x), x.item() for a tensor or numpy value, str(x))")
_leaf_types: set[type] = set(_PLAIN)  # classes seen to be recordable as they are (numpy's, Decimal...)
_array_types: set[type] = set()  # numpy array classes seen: recordable unless their dtype is object


class UnrecordableResult(TypeError):
    """A reported value or key cannot be recorded; the message names its path and type."""


def check_result(result: Mapping[str, Any]) -> None:
    """Raise UnrecordableResult naming the first value or key that cannot be recorded."""
    for key, value in result.items():
        if key.__class__ is not str:
            raise UnrecordableResult(
                f"report(): the key {key!r} is a {_type_name(key)}; result keys must be strings: {RECORDABLE}")
        if value.__class__ in _leaf_types:
            continue  # the usual case: a number
        _check(value, (key,), set())


def _check(value: Any, trail: tuple, parents: set[int]) -> None:
    """`trail`: the keys and indices from the result down to `value` (formatted only for an error)."""
    cls = value.__class__
    if cls in _leaf_types:
        return
    if cls in _array_types:
        if value.dtype.kind == "O":  # a numpy array of objects: each must be recordable
            for i, item in enumerate(value.ravel().tolist()):
                _check(item, (*trail, i), parents)
        return
    if cls is not dict and cls not in _SEQUENCES and _is_leaf(cls):
        # A class seen the first time: remembered, so that its next values skip this test.
        (_array_types if _is_array(cls) else _leaf_types).add(cls)
        return _check(value, trail, parents)
    is_mapping = cls is dict or (cls not in _SEQUENCES and isinstance(value, Mapping))
    if not (is_mapping or cls in _SEQUENCES or isinstance(value, _SEQUENCES_ABC)):
        raise UnrecordableResult(
            f"report(): result{_path(trail)} is a {_type_name(value)}, which cannot be recorded; {RECORDABLE}")
    if id(value) in parents:
        raise UnrecordableResult(f"report(): result{_path(trail)} contains itself (a cycle); {RECORDABLE}")
    if len(trail) >= MAX_DEPTH:
        raise UnrecordableResult(f"report(): result{_path(trail)} is nested more than {MAX_DEPTH} levels deep; "
                                 f"{RECORDABLE}, nested at most {MAX_DEPTH} levels")
    parents.add(id(value))
    leaves = _leaf_types
    if is_mapping:
        for key, item in value.items():
            if key.__class__ is not str and not isinstance(key, _KEY_TYPES):
                raise UnrecordableResult(f"report(): result{_path(trail)} has the key {key!r}, a {_type_name(key)}; "
                                         f"keys must be strings: {RECORDABLE}")
            if item.__class__ not in leaves:
                _check(item, (*trail, key), parents)
    else:
        for i, item in enumerate(value):
            if item.__class__ not in leaves:
                _check(item, (*trail, i), parents)
    parents.discard(id(value))


def _is_leaf(cls: type) -> bool:
    """Recorded as it is (a number, a string, a numpy value, a path, a Decimal, an Enum...)."""
    return (any(issubclass(cls, plain) for plain in _PLAIN) or issubclass(cls, enum.Enum)
            or cls.__module__ in _VALUE_MODULES or cls.__module__.partition(".")[0] == "numpy"
            or hasattr(cls, "__fspath__"))


def _is_array(cls: type) -> bool:
    """A numpy array (or a subclass), whose dtype decides: numpy's scalars are leaves as they are."""
    return any(base.__name__ == "ndarray" and base.__module__ == "numpy" for base in cls.__mro__)


def _path(trail: tuple) -> str:
    text = "".join(f"[{key!r}]" for key in trail)
    return text if len(text) <= 100 else text[:100] + "..."


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def is_number(value: Any) -> bool:
    """Whether `value`, as a metric, is recorded as a number (None and NaN are 'not reported')."""
    if value is None or isinstance(value, (int, float)):
        return True
    return type(value).__module__.partition(".")[0] == "numpy" and getattr(value, "dtype", None) is not None \
        and value.dtype.kind in "iuf" and getattr(value, "ndim", 1) == 0


def largest_value(result: Mapping[str, Any]) -> str:
    """Name the value of `result` that pickles largest, for the error on a result too large to send:
    "result['blob'] is 95.4 MiB pickled;"."""
    import pickle

    sizes = {key: len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) for key, value in result.items()}
    if not sizes:
        return ""
    key = max(sizes, key=sizes.__getitem__)
    return f"result[{key!r}] is {sizes[key] / 2**20:.1f} MiB pickled;"
