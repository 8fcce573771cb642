"""A user-space TCP relay on 127.0.0.1 that delays traffic and can cut it silently: a slow or
partitioned link in front of a test sshd, for machines without netem (tc qdisc ... netem) or
without the rights to make network namespaces.

    relay = DelayRelay(target_port=server.port, one_way_delay_s=0.01)  # a 20 ms round trip
    relay.start()                   # listens on relay.port, in a thread of its own
    relay.partition()               # bytes are held, nothing is said: a pulled cable
    relay.restore()                 # held bytes flow again (as TCP retransmits would deliver them)
    relay.stop()

Each direction of each connection keeps its order; a chunk is forwarded `one_way_delay_s`
after it arrived (bandwidth is not limited). Only 127.0.0.1 is ever connected to.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque


class DelayRelay:
    def __init__(self, target_port: int, one_way_delay_s: float = 0.0) -> None:
        self.target_port = target_port
        self.delay_s = one_way_delay_s
        self.port = 0
        self._cut = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._wakeups: set[asyncio.Event] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # Control, from any thread --------------------------------------------------------------------

    def start(self) -> DelayRelay:
        self._thread = threading.Thread(target=self._serve, name="delay-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay relay did not start")
        return self

    def partition(self) -> None:
        """Hold every byte from now on, silently (no RST, no FIN)."""
        self._cut = True

    def restore(self) -> None:
        self._cut = False
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    # The relay's own loop --------------------------------------------------------------------------

    def _wake_all(self) -> None:
        for event in self._wakeups:
            event.set()

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for writer in self._writers:  # both ends see the connection close
                writer.close()
            await asyncio.sleep(0.1)
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()
        self._wakeups.add(arrived)
        done = False

        async def read() -> None:
            nonlocal done
            while data := await reader.read(65536):
                held.append((time.monotonic() + self.delay_s, data))
                arrived.set()
            done = True
            arrived.set()

        reading = asyncio.ensure_future(read())
        try:
            while True:
                if not held or self._cut:
                    if done and not held:
                        break
                    arrived.clear()
                    await arrived.wait()
                    continue
                due, data = held[0]
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                held.popleft()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        finally:
            reading.cancel()
            self._wakeups.discard(arrived)
