"""Framing of messages between the driver and a worker: a 4-byte length, then a pickle.

The same framing runs over a local pipe and an SSH channel. Pickles only ever travel over
those, never over a listening socket (they can run code when loaded).

Driver -> worker:  ("run", TrialRequest) | ("decide", decision) | ("exit",)
Worker -> driver:  ("ready", info) | ("result", result, checkpoint_dir | None)
                   | ("done", how, checkpoint_dir | None) | ("error", message, traceback)
`how` is "finished" (the trainable returned), "stopped" or "paused" (a decision ended it).
A decision is "CONTINUE", "STOP", "PAUSE" or ("MUTATE", config, checkpoint_dir).
Configs travel inside by_value(): cloudpickled, so a class defined in the user's script
(`__main__`, a local class) reaches the worker as it does in the trainable.
"""

from __future__ import annotations

import os
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
PROTOCOL_VERSION = 1


def encode(message: Any) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Splits a byte stream into messages; feed() returns the complete ones."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages = []
        start = 0
        end = len(buffer)
        while end - start >= HEADER_SIZE:
            (size,) = _HEADER.unpack_from(buffer, start)
            if end - start - HEADER_SIZE < size:
                break
            begin = start + HEADER_SIZE
            messages.append(pickle.loads(memoryview(buffer)[begin:begin + size]))
            start = begin + size
        if start:
            del buffer[:start]
        return messages


class BlockingChannel:
    """The worker's side: blocking reads and writes on two file descriptors."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self._buffer = bytearray()

    def send(self, message: Any) -> None:
        data = memoryview(encode(message))
        while data:
            written = os.write(self.write_fd, data)
            data = data[written:]

    def receive(self) -> Any:
        header = self._read_exact(HEADER_SIZE)
        (size,) = _HEADER.unpack(header)
        return pickle.loads(self._read_exact(size))

    def _read_exact(self, size: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            chunk = os.read(self.read_fd, max(65536, size - len(buffer)))
            if not chunk:
                raise EOFError("the driver closed the channel")
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data


class by_value:  # noqa: N801  (used like a function)
    """Pickles `value` with cloudpickle inside a plain pickle; loading gives `value` back."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple:
        return cloudpickle.loads, (cloudpickle.dumps(self.value, protocol=pickle.HIGHEST_PROTOCOL),)


@dataclass
class TrialRequest:
    """Everything a worker needs to run (or resume) one trial."""

    trial_id: str
    trial_dir: str
    config: dict[str, Any]
    trainable_key: str
    trainable_blob: bytes | None  # None when the worker already holds this trainable
    restore_checkpoint: str | None = None
    start_iteration: int = 0
    start_time_total: float = 0.0
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool = False
    placement: dict[str, Any] = field(default_factory=dict)
    experiment_dir: str = ""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "config": by_value(self.config)}
