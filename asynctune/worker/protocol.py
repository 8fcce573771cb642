"""The protocol between the driver and a worker: messages, decisions, framing, and the one
place where a worker's messages become trial events.

Messages are Python tuples, pickled. They can run code when loaded, so they travel only over
a local pipe, an SSH channel, Dask's own comms, or the Dask executor's direct channel, a
socket that lets in only peers with the cluster's TLS certificate; never over a socket
without authentication.

Driver -> worker:
    ("run", TrialRequest)       start (or resume) a trial; `trainable_blob` is None when the
                                worker already holds the trainable of `trainable_key`
    ("exit",)                   end the worker
    decision                    the answer to the trial's latest "result", one of:
                                "CONTINUE" | "STOP" | "PAUSE" | ("MUTATE", config, checkpoint_dir | None)

Worker -> driver:
    ("ready", info)             once, at start: info has "pid", "hostname", "asynctune",
                                "python", "executable" and "protocol" (PROTOCOL_VERSION)
    ("result", result, checkpoint_dir | None)
                                the trial's report(); the trial then blocks until the decision
                                (unless pipelined)
    ("done", how, checkpoint_dir | None[, info])
                                the trial ended: how is "finished" (the trainable returned),
                                "stopped" or "paused" (a decision ended it); info, when
                                present, holds notes: "reported": False, "foreign_reports"
                                and "returned" (the type a function trainable returned, or
                                None) for a trial that returned without reporting (worker/foreign.py),
                                "changed": what the trial changed in the worker process, which
                                the driver then retires (worker/process_state.py)
    ("error", message, traceback[, info])
                                the trial raised; the worker lives on (unless info says
                                "changed"); info "unwritable": True when the trial's
                                directory or output files could not be made (its host's disk)
    ("mutated",)                a pipelined trial took a MUTATE: the results before this one
                                were sent under the old config (the driver drops them)

A trial's messages are: results, each answered by exactly one decision, then one "done" or
"error". A pipelined trial (TrialRequest.pipelined) does not wait for each answer (session.py):
it reads the answers that have come at each report, waits for them at its sync_iterations and
whenever PIPELINE_WINDOW results are unanswered, and sends "done" or "error" without waiting
for the last ones; the driver then sends no more, and the worker skips those already under way
(an answer where it expects "run" or "exit"). After a decision other than CONTINUE the driver
answers none of the results sent after the one it decided on, and drops them unrecorded; after
a MUTATE, up to the worker's ("mutated",). `WorkerMessages` turns them into `ResultEvent`, `DoneEvent` and `ErrorEvent`, and
tracks the decision the worker awaits; an executor adds `WorkerLostEvent` when the worker
itself goes (its pipe or channel closes, its host or Dask worker is lost).

Framing, over a pipe, an SSH channel or the Dask direct channel: a 4-byte big-endian length,
then the pickle (`encode`, `FrameDecoder`, `BlockingChannel`). The Dask executor's queue channel
sends the same messages, each pickled whole, through a pair of `distributed.Queue`s instead.
A Dask task has a handshake of its own before its first trial: it sends ("hello" on the direct
channel, "started" on the queues, {"nonce", "worker", "pid", "hostname", "thread"}) and the
driver answers ("RUN", nonce), or ("ABANDON", nonce) to a rerun Dask started on its own; a
task on the direct channel then takes ("run", TrialRequest) for further trials, ("exit",) to end.

Configs (in TrialRequest and in a MUTATE decision) travel inside by_value(): cloudpickled, so a
class defined in the user's script (`__main__`, a local class) reaches the worker as it does in
the trainable.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ..errors import AsynctuneError, ExecutorError
from ..core.trial import Decision, Mutate

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1

# Framing ----------------------------------------------------------------------------------------

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


def encode(message: Any) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def encode_to_driver(message: Any) -> bytes:
    """A worker's frame for `message`; FrameTooLarge when the driver would refuse it
    (MAX_FRAME_BYTES), so the trial's report() names its oversized result instead of sending
    what the driver must take for a damaged stream. (The driver's frames, a run request
    with its trainable, have no such limit.)"""
    frame = encode(message)
    if len(frame) - HEADER_SIZE > MAX_FRAME_BYTES:
        raise FrameTooLarge(len(frame) - HEADER_SIZE)
    return frame


# A worker's messages are results, ends and tracebacks: far below this. A length above it is a
# damaged stream (something else wrote to the worker's protocol descriptor), refused before
# anything is buffered for it.
MAX_FRAME_BYTES = 64 * 1024 * 1024


class FrameTooLarge(ValueError):
    """A message pickles to more than MAX_FRAME_BYTES: nothing of it was sent."""

    def __init__(self, size: int) -> None:
        super().__init__(f"it pickles to {size / 2**20:.1f} MiB, over the {MAX_FRAME_BYTES >> 20} MiB a message "
                         f"to the driver may hold (MAX_FRAME_BYTES)")
        self.size = size


class FrameError(AsynctuneError):
    """The byte stream is not the protocol's: an oversized length, a frame that does not unpickle,
    or (from a worker) a message that is not one of the protocol's. Nothing after it is trusted;
    `before` holds the whole messages the same feed() read ahead of it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.before: list[Any] = []


class FrameDecoder:
    """Splits a byte stream into messages; feed() returns the complete ones, or raises FrameError
    (and every later feed() too: a damaged stream stays damaged)."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame
        self.broken: FrameError | None = None

    def feed(self, data: bytes) -> list[Any]:
        if self.broken is not None:
            raise self.broken
        buffer = self._buffer
        buffer += data
        messages = []
        start = 0
        end = len(buffer)
        try:
            while end - start >= HEADER_SIZE:
                (size,) = _HEADER.unpack_from(buffer, start)
                if size > self._max_frame:
                    raise FrameError(f"a frame of {size} bytes, over the limit of {self._max_frame} bytes "
                                     f"(MAX_FRAME_BYTES)")
                if end - start - HEADER_SIZE < size:
                    break
                begin = start + HEADER_SIZE
                try:
                    messages.append(pickle.loads(memoryview(buffer)[begin:begin + size]))
                except Exception as exc:  # noqa: BLE001  anything at all: the bytes are not a message
                    raise FrameError(f"a corrupt frame ({type(exc).__name__}: {exc})") from None
                start = begin + size
        except FrameError as exc:
            exc.before = messages
            self.broken = exc
            buffer.clear()
            raise
        if start:
            del buffer[:start]
        return messages


# The exit status of a worker whose trial closed (or replaced) its protocol descriptors, e.g. with
# os.closerange(3, ...): it can no longer tell the driver anything, so its exit says it.
EXIT_CHANNEL_CLOSED = 87


class BlockingChannel:
    """The worker's side: blocking reads and writes on two file descriptors."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self._buffer = bytearray()
        self._identity = self._identities()

    def _identities(self) -> tuple[tuple[int, int], ...] | None:
        try:
            return tuple((st.st_dev, st.st_ino) for st in map(os.fstat, (self.read_fd, self.write_fd)))
        except OSError:
            return None

    def intact(self) -> bool:
        """False once something in this process closed the descriptors or put other files on
        their numbers (a trial that closes every descriptor it did not open)."""
        return self._identity is not None and self._identities() == self._identity

    def send(self, message: Any) -> None:
        data = memoryview(encode_to_driver(message))
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


# Driver -> worker -------------------------------------------------------------------------------


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
    # Pipelined (session.py): report() does not wait for the decisions, except at the results
    # in sync_iterations (by training_iteration).
    pipelined: bool = False
    sync_iterations: frozenset[int] = frozenset()
    # Whether the worker may move a trial's empty stdout.txt / stderr.txt on to its next trial
    # (worker/main.py). Only where the driver reads the trial's directory in place (the local
    # executor): over SSH the driver copies a trial's output after its end while the worker runs
    # the next one, and a file moved on meanwhile could bring it the next trial's output.
    hand_on_empty_output: bool = False
    # Whether the experiment's directory is the driver's own, there before the trial starts (the
    # local executor): the worker then makes the trial's directory only, never one above it, so
    # an experiment moved away under the run is not made again where it was.
    in_driver_dir: bool = False
    # The driver's signing key (store/signing.py): checkpoints the worker writes verify on the driver.
    signing_key: bytes = field(default=b"", repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "config": by_value(self.config)}


def run_frame(request: TrialRequest) -> bytes:
    return encode(("run", request))


EXIT_FRAME = encode(("exit",))


def decision_message(decision: Decision | Mutate) -> Any:
    """A decision as it travels: "CONTINUE" | "STOP" | "PAUSE" | ("MUTATE", config, checkpoint)."""
    if isinstance(decision, Mutate):
        return ("MUTATE", by_value(decision.config), decision.checkpoint)
    return decision.value


_CONTINUE_FRAME = encode(Decision.CONTINUE.value)


def encode_decision(decision: Decision | Mutate) -> bytes:
    if decision is Decision.CONTINUE:
        return _CONTINUE_FRAME  # the hot path: the same bytes every time
    return encode(decision_message(decision))


def read_decision(message: Any) -> Decision | Mutate:
    """The worker's side of decision_message()."""
    if message == "CONTINUE":
        return Decision.CONTINUE
    if isinstance(message, tuple) and len(message) == 3 and message[0] == "MUTATE":
        return Mutate(message[1], message[2])
    if message in ("STOP", "PAUSE"):
        return Decision(message)
    raise AsynctuneError(f"unexpected decision from the driver: {message!r}")


# Worker -> driver: the events the controller reads ----------------------------------------------


@dataclass(frozen=True)
class ResultEvent:
    result: dict[str, Any]
    checkpoint: str | None  # directory of the checkpoint reported with this result


@dataclass(frozen=True)
class DoneEvent:
    how: str  # "finished" | "stopped" | "paused"
    checkpoint: str | None
    info: dict[str, Any] = field(default_factory=dict)  # the worker's notes: "reported", "foreign_reports"


@dataclass(frozen=True)
class ErrorEvent:
    """The trial raised; the worker survives."""

    error: str
    traceback: str
    info: dict[str, Any] = field(default_factory=dict)  # the worker's notes, as DoneEvent's


@dataclass(frozen=True)
class WorkerLostEvent:
    """The worker died under the trial (killed, OOM, host lost)."""

    error: str
    exit_code: int | None = None
    stderr_tail: str = ""


TrialEvent = ResultEvent | DoneEvent | ErrorEvent | WorkerLostEvent


class WorkerMessages:
    """The driver's reading of one worker's messages, shared by the local, SSH and Dask
    executors: "ready" resolves `ready`, a trial's messages become events, and the decision
    the worker awaits after each result is tracked, so that exactly one answers it.

    Local and SSH workers feed() it the bytes of their pipe or channel and get `on_result`
    and `on_end` calls; the Dask executor passes it each message with event().
    """

    def __init__(self, where: str, on_result: Callable[[ResultEvent], None] | None = None,
                 on_end: Callable[[DoneEvent | ErrorEvent], None] | None = None,
                 on_broken: Callable[[str], None] | None = None) -> None:
        self.where = where  # "worker on gpu1", for errors
        self.on_result = on_result
        self.on_end = on_end  # the trial ended: its worker is free again
        self.on_broken = on_broken  # its stream is damaged (FrameError): the worker must go
        import asyncio  # here, not at the top: a worker process has no use for asyncio

        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.awaiting_decision = False
        self.on_mutated: Callable[[], None] | None = None  # set by an executor that pipelines decisions
        self._decoder = FrameDecoder()

    def feed(self, data: bytes) -> None:
        """Take bytes from the worker; a damaged stream calls `on_broken` once, and what follows is ignored."""
        if self._decoder.broken is not None:
            return
        damage: FrameError | None = None
        try:
            messages = self._decoder.feed(data)
        except FrameError as exc:
            # What came whole before the damage is the worker's (a pipelined trial's results
            # may share a read with it): delivered, then the worker is ended.
            messages, damage = exc.before, exc
        for index, message in enumerate(messages):  # a worker sends tuples, each named by its first item
            if not (message.__class__ is tuple and message and message[0].__class__ is str):
                self._decoder.broken = damage = FrameError(f"a frame that is no message of the protocol: "
                                                           f"{message!r:.80}")
                del messages[index:]
                break
        self._deliver(messages)
        if damage is not None:
            logger.warning("%s sent %s: ending it", self.where, damage)
            self.on_broken(str(damage))

    def _deliver(self, messages: list[tuple]) -> None:
        for message in messages:
            if message[0] == "result":  # the hot path, inlined
                self.awaiting_decision = True
                self.on_result(ResultEvent(message[1], message[2]))
                continue
            event = self.event(message)
            if event is not None:
                self.on_end(event)

    def event(self, message: tuple) -> ResultEvent | DoneEvent | ErrorEvent | None:
        kind = message[0]
        if kind == "result":
            self.awaiting_decision = True
            return ResultEvent(message[1], message[2])
        if kind == "done":
            self.awaiting_decision = False
            return DoneEvent(message[1], message[2], message[3] if len(message) > 3 else {})
        if kind == "error":
            self.awaiting_decision = False
            return ErrorEvent(message[1], message[2], message[3] if len(message) > 3 else {})
        if kind == "ready":
            self._on_ready(message[1])
            return None
        if kind == "mutated" and self.on_mutated is not None:  # a pipelined trial took a MUTATE
            self.on_mutated()
            return None
        logger.warning("%s: unexpected message %r", self.where, message)
        return None

    def answering(self) -> bool:
        """Take the awaited decision's turn: False (and an error logged) when none is awaited,
        since a decision sent then would be read as the answer to the trial's next result."""
        if self.awaiting_decision:
            self.awaiting_decision = False
            return True
        logger.error("%s: a decision was sent while the trial awaited none; dropped", self.where)
        return False

    def _on_ready(self, info: dict[str, Any]) -> None:
        if self.ready.done():
            return
        if info.get("protocol") != PROTOCOL_VERSION:
            self.ready.set_exception(ExecutorError(
                f"{self.where} speaks protocol {info.get('protocol')}, the driver {PROTOCOL_VERSION}: "
                f"install the same asynctune version"))
        else:
            self.ready.set_result(info)
