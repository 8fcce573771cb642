"""The store's one JSONL reader: a record per line, a torn or damaged line skipped, read whole or
as a tail that parses only what was appended since the last read.

Every reader of an experiment's .jsonl files (the analysis, resume's repair, the decisions log,
the dashboard's live tails) parses lines here, so they agree on what a record is: a JSON object
on one line. Anything else (a line torn by a killed writer, a damaged one) is not a record:
`layout.check_jsonl` reports such lines, `layout.repair_jsonl` moves them aside.

    >>> parse_record('{"score": 1}\\n'), parse_record('{"sco'), parse_record("[1]")
    ({'score': 1}, None, None)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from ..errors import AsynctuneError
from .paths import checked


class NotAFile(AsynctuneError, ValueError):
    """A file of an experiment that is not one: a directory in its place, or a file where the
    directory above it should be (a trial's).

    Attributes:
        path: The file.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}; move it away (what it held is lost to asynctune)")
        self.path = path


def parse_record(line: str | bytes) -> dict[str, Any] | None:
    """The JSON object on `line`, or None if it holds none (torn, damaged, blank, another type)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def parse_lines(chunk: bytes) -> list[dict[str, Any]]:
    """The records of complete lines in `chunk`; lines that hold none are skipped."""
    return [record for record in map(parse_record, chunk.splitlines()) if record is not None]


def numbered_records(path: str) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """(line number from 1, text, record or None) for each line of `path`; nothing if it is missing.
    A last line without its newline is given too: the caller decides whether it is torn."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for number, text in enumerate(f, 1):
                yield number, text, parse_record(text)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise NotAFile(path, "is a directory, not a file") from None
    except NotADirectoryError:
        raise NotAFile(path, f"cannot be read: {os.path.dirname(path)} is a file, not a directory") from None


class JsonlTail:
    """A JSONL file read incrementally: each read parses only the bytes appended since the last.

    A last line without its newline is left for the next read (a writer may be halfway through
    it). A file that shrank or was replaced (a trial rewound to a checkpoint rewrites its
    result.jsonl) is read again from the start. A file that leads outside `root` (a symbolic
    link) is refused with paths.LinkOutside.

        >>> tail = JsonlTail(store.names.decisions_file(experiment_dir), experiment_dir)  # doctest: +SKIP
        >>> tail.read()  # every decision so far; later calls parse only the new lines  # doctest: +SKIP
    """

    def __init__(self, path: str, root: str) -> None:
        self.path, self.root = path, root  # the experiment it must stay inside
        self.records: list[dict[str, Any]] = []
        self._offset = 0
        self._inode: int | None = None

    def read(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.records, self._offset, self._inode = [], 0, None
            return self.records
        if st.st_ino != self._inode or st.st_size < self._offset:
            self.records, self._offset, self._inode = [], 0, st.st_ino
        checked(self.root, self.path)
        if st.st_size > self._offset:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(st.st_size - self._offset)
            complete = chunk.rfind(b"\n") + 1
            self._offset += complete
            self.records = self.records + parse_lines(chunk[:complete])  # a new list: readers may hold the old
        return self.records

    @property
    def version(self) -> tuple[int | None, int]:
        """Changes whenever read() found new records or a new file."""
        return self._inode, self._offset
