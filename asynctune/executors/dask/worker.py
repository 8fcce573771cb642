"""The trial's side of a DaskExecutor: the Dask tasks that run inside a Dask worker process.

`serve` is the task on the direct channel: it connects to the driver's listener over TLS
with the worker's own credentials (the cluster's `distributed.Security`), introduces itself
("hello", with a fresh nonce), and once told ("RUN", nonce) runs its first trial, then any
further trial the driver sends it (("run", TrialRequest)) until told ("exit",), so a short
trial pays neither a task submission nor an import. The trial's messages and decisions are
the local pipe's: `protocol.encode` frames (4-byte length + pickle), read and written by
blocking calls in the trial's thread.

When the driver cannot be reached, `serve` says so to the driver through the scheduler's
event log and runs its one trial over the queue channel instead: `run_over_queues`, a pair of
`distributed.Queue`s on the scheduler (also the channel of a cluster without TLS).

Only executors/dask/executor.py names these functions, in the tasks it submits.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import select
import socket
import ssl
import sys
import threading
import uuid
from typing import Any

from ...worker import session as session_module
from ...errors import AsynctuneError
from ...store.names import stderr_file, stdout_file
from ...worker.protocol import HEADER_SIZE, TrialRequest, encode_to_driver
from .hello import hello_frame

POLL_S = 1.0  # how often a trial waiting for the driver checks that its task is still wanted

_TRAINABLES: dict[str, Any] = {}
_INSTALL_LOCK = threading.Lock()


def pack(message: Any) -> bytes:
    """Queue messages travel as pickles inside Dask's comms: its msgpack would turn lists into tuples."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Any:
    return pickle.loads(data)


def _told_to_run(channel: Any, kind: str, worker: Any, key: Any) -> bool:
    """Introduce this run of the task with a fresh nonce; whether the driver says to run it
    (it refuses a rerun Dask started on its own after a worker died)."""
    nonce = uuid.uuid4().hex
    name = "" if worker.name is None else str(worker.name)
    info = {"nonce": nonce, "key": str(key), "worker": worker.address, "name": name,
            "pid": os.getpid(), "hostname": socket.gethostname(), "thread": threading.get_ident()}
    if kind == "hello":  # the direct channel: a fixed header, which the driver reads before any pickle
        channel.sock.sendall(hello_frame(info))
    else:
        channel.send((kind, info))
    try:
        return channel.receive() == ("RUN", nonce)
    except session_module.StopTrial:
        return False


# --- the direct channel -----------------------------------------------------------------------

def serve(request_blob: bytes, address: str, fallback_topic: str, connect_timeout_s: float) -> str:
    """The Dask task of a runner: connect, introduce this run, run trials until told to stop."""
    from distributed import get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    key = thread_state.key
    try:
        link = DirectLink.connect(address, worker, key, connect_timeout_s)
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        worker.log_event(fallback_topic, {"key": key, "worker": worker.address, "error": error})
        return run_over_queues(request_blob, f"{key}-out", f"{key}-in")
    try:
        if not _told_to_run(link, "hello", worker, key):
            return "abandoned"
        request: TrialRequest | None = pickle.loads(request_blob)
        ran = 0
        while request is not None:
            link.send(_execute(link, request))
            ran += 1
            request = link.next_request()
        return f"ran {ran}"
    finally:
        link.close()


class DirectLink:
    """The trial's channel (send/receive, as TrialSession uses it) over one TLS connection to
    the driver: blocking reads and writes of `protocol.encode` frames, as on a local pipe."""

    def __init__(self, sock: ssl.SSLSocket, worker: Any, key: Any) -> None:
        self.sock, self.worker, self.key = sock, worker, key
        self._buffer = bytearray()

    @classmethod
    def connect(cls, address: str, worker: Any, key: Any, timeout_s: float) -> DirectLink:
        """Connect with the worker's credentials: the driver's listener requires them (mutual TLS)."""
        context = worker.security.get_connection_args("worker").get("ssl_context")
        if context is None:
            raise ConnectionRefusedError("this worker has no TLS credentials for the driver's channel")
        host, port = _host_port(address)
        raw = socket.create_connection((host, port), timeout=timeout_s)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = context.wrap_socket(raw)  # the handshake, within timeout_s
        except BaseException:
            raw.close()
            raise
        sock.settimeout(None)  # reads wait in select(), with a poll; writes block
        return cls(sock, worker, key)

    def send(self, message: Any) -> None:
        self.sock.sendall(encode_to_driver(message))

    def receive(self) -> Any:
        """The driver's next message; StopTrial once the task is no longer wanted or the
        driver is gone."""
        header = self._read_exact(HEADER_SIZE)
        return pickle.loads(self._read_exact(int.from_bytes(header, "big")))

    def next_request(self) -> TrialRequest | None:
        """Between trials: the next trial to run, or None when told to exit (or let go)."""
        while True:
            try:
                message = self.receive()
            except session_module.StopTrial:
                return None
            if isinstance(message, tuple) and message and message[0] == "run":
                return message[1]
            if message == ("exit",):
                return None
            # Anything else is a decision that crossed the trial's end (a STOP sent as it
            # finished): it answers nothing now.

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_exact(self, size: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            if not self.sock.pending() and not select.select([self.sock], [], [], POLL_S)[0]:
                if not _still_wanted(self.worker, self.key):
                    raise session_module.StopTrial()
                continue
            try:
                chunk = self.sock.recv(max(65536, size - len(buffer)))
            except OSError:
                chunk = b""
            if not chunk:  # the driver closed the channel, or went away
                raise session_module.StopTrial()
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("tls://").rpartition(":")
    return host.strip("[]"), int(port)


def _still_wanted(worker: Any, key: Any) -> bool:
    """False once Dask cancelled this task (the driver let go of it, or went away)."""
    state = worker.state.tasks.get(key)
    return state is not None and state.state in ("executing", "long-running")


# --- the queue channel --------------------------------------------------------------------------

def run_over_queues(request_blob: bytes, outbox_name: str, inbox_name: str) -> str:
    """The Dask task on the queue channel: introduce this run, wait for the go, run the trial,
    send how it ended."""
    from distributed import Queue, get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    outbox, inbox = Queue(outbox_name), Queue(inbox_name)
    channel = QueueChannel(outbox, inbox, worker, thread_state.key)
    if not _told_to_run(channel, "started", worker, thread_state.key):
        return "abandoned"
    message = _execute(channel, pickle.loads(request_blob))
    channel.send(message)
    for queue in (outbox, inbox):
        queue.close()
    return message[0]


class QueueChannel:
    """The trial's channel (send/receive, as TrialSession uses it) over two Dask queues."""

    def __init__(self, outbox: Any, inbox: Any, worker: Any, key: Any) -> None:
        self.outbox, self.inbox, self.worker, self.key = outbox, inbox, worker, key

    def send(self, message: Any) -> None:
        self.outbox.put(pack(message))

    def receive(self) -> Any:
        while True:
            try:
                return unpack(self.inbox.get(timeout=POLL_S))
            except (TimeoutError, asyncio.TimeoutError):
                if not _still_wanted(self.worker, self.key):
                    raise session_module.StopTrial() from None


# --- running a trial in a worker's thread -------------------------------------------------------

def _execute(channel: Any, request: TrialRequest) -> tuple:
    """Run one trial in this thread; the message that says how it ended."""
    from ...worker.main import execute_trial

    _install_thread_routing()
    os.makedirs(request.trial_dir, exist_ok=True)
    session = session_module.TrialSession(channel, request)
    watch = _CancelWatch(channel.worker, channel.key)
    with _trial_output(request.trial_dir):
        _SESSIONS.bind(session)
        try:
            return execute_trial(session, request, _TRAINABLES)
        finally:
            watch.stop()
            _SESSIONS.unbind()


class _CancelWatch:
    """Interrupts the trial's thread once Dask cancels its task. The driver cancels a task only
    when it let go of the trial, and the scheduler when the driver went away: a trial busy
    between reports would otherwise keep its worker's thread until its next report (one long
    epoch), with nobody left to read what it sends."""

    def __init__(self, worker: Any, key: Any) -> None:
        self._worker, self._key, self._thread_id = worker, key, threading.get_ident()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._interrupted = False
        threading.Thread(target=self._watch, name=f"asynctune-cancel-watch-{key}", daemon=True).start()

    def stop(self) -> None:
        """The trial is over (called in its thread): no interrupt may land in Dask's code."""
        with self._lock:
            self._done.set()
            if self._interrupted:  # still pending if the trial ended before it landed: drop it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)

    def _watch(self) -> None:
        while not self._done.wait(POLL_S):
            if not _still_wanted(self._worker, self._key):
                with self._lock:
                    if not self._done.is_set():
                        self._interrupted = True
                        interrupt_thread(self._thread_id)
                return


def interrupt_thread(thread_id: int) -> int:
    """Raise StopTrial in the trial's thread at its next bytecode (runs on the Dask worker)."""
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                      ctypes.py_object(session_module.StopTrial))


class _ThreadSessions:
    """Stands in for `session._current` in a Dask worker, where several trials may run at
    once in threads of one process: each thread sees its own trial's session."""

    def __init__(self) -> None:
        self._local = threading.local()

    def bind(self, session: session_module.TrialSession) -> None:
        self._local.session = session

    def unbind(self) -> None:
        self._local.session = None

    def __getattr__(self, name: str) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            raise AsynctuneError("asynctune functions can only be called inside a trial started by asynctune.run()")
        return getattr(session, name)


class _ThreadRoutedStream:
    """sys.stdout / sys.stderr of a Dask worker: a trial's thread writes to its own file, every
    other thread to the worker's stream (the worker's fds are never redirected)."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.targets: dict[int, Any] = {}

    def _target(self) -> Any:
        return self.targets.get(threading.get_ident(), self.original)

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


_SESSIONS = _ThreadSessions()


def _install_thread_routing() -> None:
    with _INSTALL_LOCK:
        if session_module._current is not _SESSIONS:
            session_module._current = _SESSIONS  # type: ignore[assignment]
        if not isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = _ThreadRoutedStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadRoutedStream):
            sys.stderr = _ThreadRoutedStream(sys.stderr)


class _trial_output:
    """Route this thread's prints to the trial's stdout.txt / stderr.txt."""

    def __init__(self, trial_dir: str) -> None:
        self.trial_dir = trial_dir
        self.files: list[Any] = []

    def __enter__(self) -> None:
        ident = threading.get_ident()
        for stream, path in ((sys.stdout, stdout_file(self.trial_dir)), (sys.stderr, stderr_file(self.trial_dir))):
            handle = open(path, "a", buffering=1)
            self.files.append(handle)
            stream.targets[ident] = handle

    def __exit__(self, *exc_info: Any) -> None:
        ident = threading.get_ident()
        for stream in (sys.stdout, sys.stderr):
            stream.targets.pop(ident, None)
        for handle in self.files:
            handle.close()
