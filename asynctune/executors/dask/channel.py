"""The driver's side of the two channels between a DaskExecutor and its trials.

Direct (a cluster with TLS): the driver listens on the interface it reaches the scheduler
from, TLS only, with the SSL context of the cluster's `distributed.Security`
(`get_listen_args("client")`, which requires a peer certificate signed by the cluster's CA);
Dask tasks (`dask_worker.serve`, "runners") connect with their worker's
(`get_connection_args("worker")`), so every connection is mutually authenticated by the
cluster's CA. On it travel the local pipe's frames (`protocol.encode`: 4-byte length +
pickle), through asyncio streams on the driver's loop. A runner that finished a
trial cleanly waits for the next one on the same worker (`Runners.idle`), so a short trial
pays neither a task submission nor an import; one idle for `IDLE_S` is told to exit, which
frees its Dask thread.

Queue (a cluster without TLS, or a worker that cannot reach the driver): two
`distributed.Queue`s per trial on the scheduler, read by a pump task.

Either way a trial's messages land in the run's `mailbox` (an asyncio.Queue) and its
decisions leave through the link's `send()`, so `trial_run.DaskTrialRun` reads both alike.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from ...errors import ExecutorError
from .hello import read_hello
from .worker import pack, unpack
from ...core.trial import Decision, Mutate
from ...worker.protocol import EXIT_FRAME, FrameDecoder, decision_message, encode, encode_decision

logger = logging.getLogger(__name__)

IDLE_S = 2.0  # how long a runner waits for another trial before it is told to exit
HELLO_TIMEOUT_S = 10.0  # how long a new connection may take to introduce itself
_DRAIN_WAIT_S = 0.2  # after a loss, how long a queued result already on its way may take to arrive


class QueueLink:
    """A trial's two `distributed.Queue`s: a pump moves its messages into the mailbox."""

    def __init__(self, spawn: Callable[..., Any], name: str, outbox: Any, inbox: Any, mailbox: asyncio.Queue,
                 on_error: Callable[[BaseException], None], cancel: Callable[[], None]) -> None:
        self.outbox, self.inbox, self.mailbox = outbox, inbox, mailbox
        self._spawn, self._name, self._on_error, self._cancel = spawn, name, on_error, cancel
        self._sending: asyncio.Task[Any] | None = None
        self._pump = spawn(self._pump_messages(), f"dask-queue-{name}")

    async def _pump_messages(self) -> None:
        try:
            while True:
                self.mailbox.put_nowait(unpack(await self.outbox.get()))
        except Exception as exc:  # the scheduler went away under the get
            self._on_error(exc)

    def send(self, message: Any) -> None:
        previous = self._sending

        async def put() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await self.inbox.put(pack(message))
            except Exception as exc:
                self._on_error(exc)

        self._sending = self._spawn(put(), f"dask-decide-{self._name}")

    def send_decision(self, decision: Decision | Mutate) -> None:
        self.send(decision_message(decision))

    async def drain(self, scheduler_up: bool) -> None:
        """After a loss: what the trial sent before it, still held by the scheduler."""
        if self._pump is not None:
            await asyncio.wait({self._pump}, timeout=_DRAIN_WAIT_S)
            self._pump.cancel()
        if scheduler_up:
            try:
                for data in await asyncio.wait_for(self.outbox.get(batch=True), 1.0):
                    self.mailbox.put_nowait(unpack(data))
            except Exception:  # the scheduler may be gone too: then there is nothing to drain
                pass

    def release(self, clean: bool) -> None:
        """The run is over: stop reading, cancel its task if it still runs, close the queues."""
        if self._pump is not None:
            self._pump.cancel()
        self._cancel()
        for queue in (self.outbox, self.inbox):
            try:
                queue.close()
            except Exception:
                pass


class Runner:
    """A `serve` task on a Dask worker and its connection: runs one trial at a time."""

    def __init__(self, runners: Runners, key: str, future: Any, resources: dict[str, float]) -> None:
        self.runners, self.key, self.future, self.resources = runners, key, future, resources
        self.writer: asyncio.StreamWriter | None = None  # once connected
        self.info: dict[str, Any] = {}  # the runner's introduction: worker, name, pid, thread, nonce
        self.host: str | None = None  # the worker's name, once connected
        self.run: Any = None  # the DaskTrialRun it runs now
        self.trainables: set[str] = set()  # trainable keys its worker process already holds
        self.idle_since: float | None = None
        self.closed = False
        self._early: list[bytes] = []  # sent before it connected (a kill as it starts)
        self._idle_timer: asyncio.TimerHandle | None = None

    # The run's link --------------------------------------------------------------------------------

    def link_for(self, run: Any) -> RunnerLink:
        self.run, self.idle_since = run, None
        self._stop_idle_timer()
        return RunnerLink(self, run)

    def send(self, message: Any) -> None:
        self.send_frame(encode(message))

    def send_frame(self, frame: bytes) -> None:
        if self.closed:
            return
        if self.writer is None:
            self._early.append(frame)
            return
        try:
            self.writer.write(frame)  # buffered in order; the loop writes it out
        except Exception as exc:  # the transport is closing: the reader reports the loss
            logger.debug("Dask runner %s: write failed: %s", self.key, exc)

    def finished(self, run: Any, clean: bool) -> None:
        if self.run is not run:
            return
        self.run = None
        if clean and not self.closed and self.writer is not None:
            self.idle_since = time.monotonic()
            # A timer, not a sleeping task: short trials leave no task per trial for close() to wait on.
            self._idle_timer = asyncio.get_running_loop().call_later(IDLE_S, self._exit_if_idle, self.idle_since)
        else:
            self.retire(cancel=True)

    def retire(self, cancel: bool = False) -> None:
        """Tell it to exit (it frees its Dask thread), and forget it; `cancel` its task too
        when its trial did not end cleanly (lost, killed), so Dask does not run it again."""
        if self.closed:
            return
        self._stop_idle_timer()
        self.send_frame(EXIT_FRAME)
        self.closed = True
        self.runners.forget(self)
        if cancel or self.writer is None:  # never connected: the task itself must go
            self.runners.cancel(self.future)
        if self.writer is not None:
            self.writer.close()  # after "exit": buffered data is written before the close

    # Connection ----------------------------------------------------------------------------------

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               info: dict[str, Any], decoder: FrameDecoder) -> None:
        """Read what comes until the connection or the runner closes."""
        self.writer, self.info = writer, info
        self.host = self.runners.host_name(info["worker"], info)
        for frame in self._early:
            writer.write(frame)
        self._early.clear()
        if self.run is not None:
            self.run.mailbox.put_nowait(("started", info))
        reason = "it closed its connection"
        try:
            while data := await reader.read(65536):
                run = self.run
                for message in decoder.feed(data):
                    if run is not None:
                        run.mailbox.put_nowait(message)
                    else:
                        logger.warning("Dask runner %s: message outside a trial dropped: %r", self.key, message)
        except Exception as exc:
            reason = f"its connection to the driver failed: {type(exc).__name__}: {exc}"
        finally:
            if self.run is not None:  # the worker died under the trial (it exits only when idle)
                self.run.lose_worker(info["worker"], f"the Dask worker {info['worker']} was lost ({reason})")
            self.closed = True
            self.runners.forget(self)
            writer.close()

    def _exit_if_idle(self, since: float) -> None:
        self._idle_timer = None
        if self.idle_since == since and self.run is None:
            self.retire()

    def _stop_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


class RunnerLink:
    """One run's view of its runner: the same send, a mailbox of its own."""

    def __init__(self, runner: Runner, run: Any) -> None:
        self.runner, self.run = runner, run
        self.mailbox: asyncio.Queue[Any] = run.mailbox

    def send(self, message: Any) -> None:
        self.runner.send(message)

    def send_decision(self, decision: Decision | Mutate) -> None:
        self.runner.send_frame(encode_decision(decision))  # CONTINUE's frame is made once

    async def drain(self, scheduler_up: bool) -> None:
        await asyncio.sleep(0)  # the reader put all it read before it said the connection closed

    def release(self, clean: bool) -> None:
        self.runner.finished(self.run, clean)


class Runners:
    """The driver's listener and the runners that connect to it."""

    def __init__(self, spawn: Callable[..., Any], cancel: Callable[[Any], None],
                 host_name: Callable[[str, Any], str]) -> None:
        self.spawn, self.cancel, self.host_name = spawn, cancel, host_name
        self.address: str | None = None  # what workers connect to
        self._server: asyncio.AbstractServer | None = None
        self._by_key: dict[str, Runner] = {}

    async def start(self, host: str, security: Any) -> str:
        """Listen on `host` with TLS only, with the cluster's credentials: the context
        requires a peer certificate signed by the cluster's CA (mutual TLS)."""
        context = security.get_listen_args("client").get("ssl_context")
        if context is None or context.verify_mode != ssl.CERT_REQUIRED:
            raise ExecutorError("DaskExecutor: the direct channel needs the cluster's TLS credentials")
        self._server = await asyncio.start_server(self._on_connection, host, 0, ssl=context,
                                                  ssl_handshake_timeout=HELLO_TIMEOUT_S)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"tls://{host}:{port}" if ":" not in host else f"tls://[{host}]:{port}"
        return self.address

    def add(self, key: str, future: Any, resources: dict[str, float]) -> Runner:
        runner = Runner(self, key, future, resources)
        self._by_key[key] = runner
        return runner

    def idle(self, host: str, resources: dict[str, float]) -> Runner | None:
        """A runner idle on `host` whose task holds the same Dask resources, if any."""
        for runner in self._by_key.values():
            if runner.host == host and runner.run is None and runner.writer is not None and not runner.closed:
                if runner.resources == resources:
                    return runner
        return None

    def retire_idle(self, host: str) -> None:
        """Before a new task goes to `host`: idle runners there would hold its threads."""
        for runner in list(self._by_key.values()):
            if runner.host == host and runner.run is None and runner.writer is not None:
                runner.retire()

    def get(self, key: str) -> Runner | None:
        return self._by_key.get(key)

    def forget(self, runner: Runner) -> None:
        if self._by_key.get(runner.key) is runner:
            del self._by_key[runner.key]

    async def close(self) -> None:
        for runner in list(self._by_key.values()):
            runner.retire()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A runner connected (its certificate verified by the TLS handshake): it introduces
        itself with a fixed header (hello.py), checked before a byte of pickle is read."""
        try:
            info = await asyncio.wait_for(read_hello(reader), HELLO_TIMEOUT_S)
        except Exception as exc:
            logger.warning("Dask channel: a connection from %s did not introduce itself (%s: %s); closed",
                           writer.get_extra_info("peername"), type(exc).__name__, exc)
            writer.close()
            return
        key = info["key"]
        runner = self._by_key.get(key)
        if runner is None or runner.writer is not None:
            # Dask ran the task again (its first worker died), the driver let go of it, or this
            # task has its runner already: this run must not train. A running trial is left
            # alone: if its worker died, its own connection's end says so.
            if runner is not None:
                logger.warning("Dask channel: a second hello for %s, which has a runner (on %s); refused", key,
                               runner.info.get("worker"))
            writer.write(encode(("ABANDON", info["nonce"])))
            writer.close()
            return
        task = self.spawn(runner.serve_connection(reader, writer, info, FrameDecoder()), f"dask-runner-{key}")
        if task is None:  # the executor is closing
            writer.close()
            return
        await asyncio.wait({task})
