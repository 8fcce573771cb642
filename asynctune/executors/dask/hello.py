"""The first bytes on the Dask executor's direct channel: a fixed header, never a pickle.

A runner (a Dask task) that connects introduces itself before anything else: the line
`HELLO_MAGIC`, then one line of JSON, {"key", "nonce", "worker", "name", "pid", "hostname",
"thread"}, at most `MAX_HELLO_BYTES` in all. The driver reads it without unpickling anything
and without buffering more than that, checks it (`read_hello`), and only then speaks the
pickled protocol with a runner whose task key it is waiting for.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

HELLO_MAGIC = b"asynctune-hello/1\n"
MAX_HELLO_BYTES = 4096


class HelloRefused(ValueError):
    """The connection's first bytes are not a runner's introduction."""


def hello_frame(info: dict[str, Any]) -> bytes:
    """A runner's introduction, as it goes on the wire."""
    frame = HELLO_MAGIC + json.dumps(info, separators=(",", ":")).encode() + b"\n"
    if len(frame) > MAX_HELLO_BYTES:
        raise ValueError(f"hello of {len(frame)} bytes, over {MAX_HELLO_BYTES}")
    return frame


async def read_hello(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The introduction a connection starts with; HelloRefused, before anything else is read,
    when it is not one. Reads at most MAX_HELLO_BYTES."""
    magic = await reader.readexactly(len(HELLO_MAGIC))
    if magic != HELLO_MAGIC:
        raise HelloRefused(f"it began with {magic[:16]!r}, not asynctune's hello")
    data = bytearray()
    while b"\n" not in data:
        room = MAX_HELLO_BYTES - len(HELLO_MAGIC) - len(data)
        if room <= 0:
            raise HelloRefused(f"its hello is longer than {MAX_HELLO_BYTES} bytes")
        chunk = await reader.read(room)
        if not chunk:
            raise HelloRefused("it closed before its hello ended")
        data += chunk
    line, _, rest = bytes(data).partition(b"\n")
    if rest:  # a runner says nothing more before it is answered
        raise HelloRefused("it sent more than its hello before the answer")
    try:
        info = json.loads(line)
    except ValueError as exc:
        raise HelloRefused(f"its hello is not JSON ({exc})") from None
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("key", "nonce", "worker")):
        raise HelloRefused("its hello lacks the key, nonce or worker")
    return info
