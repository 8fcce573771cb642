"""Pickle a trainable for the workers so that its tracebacks name the user's file and line.

cloudpickle sends functions and classes defined in a script, a notebook or a local scope by value,
and renames their code's file to "<dynamic-code>", so a failing trial's traceback would point
nowhere. Here a code object travels as marshal data (same Python major.minor on every worker, as
cloudpickle's by-value code already needs), which keeps `co_filename` and the line table; the
source lines travel too, for workers that cannot read the file (an SSH host, a notebook cell).
"""

from __future__ import annotations

import io
import linecache
import marshal
import os
import types
from collections import ChainMap
from typing import Any

import cloudpickle


def dumps(obj: Any) -> bytes:
    """cloudpickle.dumps, keeping the file names and source lines of code sent by value."""
    with io.BytesIO() as buffer:
        _Pickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
        return buffer.getvalue()


def _reduce_code(code: types.CodeType) -> tuple:
    try:
        data = marshal.dumps(code)
    except ValueError:  # a constant marshal cannot hold (code built by hand): cloudpickle's way
        return cloudpickle.Pickler.dispatch_table[types.CodeType](code)
    # linecache returns the same list for every code object of a file: pickled once, then referenced.
    return _load_code, (data, code.co_filename, linecache.getlines(code.co_filename))


def _load_code(data: bytes, filename: str, lines: list[str]) -> types.CodeType:
    """Rebuild the code; lend tracebacks the sent source when this machine has no such file."""
    if lines and not os.path.isfile(filename) and filename not in linecache.cache:
        # mtime None: linecache.checkcache keeps the entry (as for source from a loader).
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return marshal.loads(data)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)
