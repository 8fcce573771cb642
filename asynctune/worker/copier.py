"""The checkpoint copier on an SSH host: one long-lived process per host that streams folders
to the driver as tar archives, so a batch of checkpoints costs one round trip and no shell.

Started over an SSH exec channel as `python -m asynctune.worker.copier`. Each request is one
line on stdin, a JSON list of absolute folder paths; the answer on stdout is one tar archive
of those that exist (names relative to /), cut into chunks: a 4-byte big-endian length, then
that many bytes, and a zero length after the last chunk. No pickles travel here.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tarfile
from typing import BinaryIO

_CHUNK = struct.Struct(">I")


class _ChunkedWriter:
    """A write-only file that frames what tarfile writes into chunks on `out`."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        if data:
            self.out.write(_CHUNK.pack(len(data)))
            self.out.write(data)
        return len(data)

    def end(self) -> None:
        self.out.write(_CHUNK.pack(0))
        self.out.flush()


def serve(requests: BinaryIO, out: BinaryIO) -> None:
    for line in requests:
        paths = [p for p in json.loads(line) if os.path.isdir(p)]
        writer = _ChunkedWriter(out)
        with tarfile.open(fileobj=writer, mode="w|", bufsize=1 << 16) as tar:  # type: ignore[call-overload]
            for path in paths:
                try:
                    tar.add(path, arcname=path.lstrip("/"))
                except OSError:  # removed meanwhile: the driver sees it missing from the archive
                    pass
        writer.end()


def main() -> None:
    os.umask(0o077)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
