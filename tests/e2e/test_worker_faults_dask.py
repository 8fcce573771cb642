"""Issue 29, case 8: the Dask executor's direct channel against a real LocalCluster (TLS), as a
holder of the cluster's certificate could use it: a pickle for a hello, an oversized length,
a second hello for a running trial's task."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import asynctune as at
from asynctune.core.compat import TaskGroup

distributed = pytest.importorskip(
    "distributed", reason="dask's distributed is not installed: pip install 'asynctune[dask]'")

from asynctune.executors.dask.executor import DaskExecutor  # noqa: E402
from asynctune.executors.dask.hello import hello_frame  # noqa: E402
from asynctune.worker.protocol import FrameDecoder, encode  # noqa: E402
from tests.e2e.test_dask_security import waits_for_flag  # noqa: E402


@pytest.fixture(autouse=True)
def _resource_tracker(multiprocessing_resource_tracker):
    """Started before the per-test check of leftover processes (conftest.py)."""


class _Unpickled:
    """Creates a file when unpickled: evidence that the driver unpickled what it was sent."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def _connect(executor: DaskExecutor):
    host, port = executor._runners.address.removeprefix("tls://").rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=5)
    return executor.cluster.security.get_connection_args("worker")["ssl_context"].wrap_socket(raw)


def _send_and_read(executor: DaskExecutor, data: bytes) -> tuple[bytes, float]:
    """Send `data` with the cluster's certificate; what the driver answers until it closes, and how soon."""
    began = time.monotonic()
    with _connect(executor) as sock:
        try:
            sock.sendall(data)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            answer = b""
    return answer, time.monotonic() - began


async def test_the_direct_channel_refuses_before_unpickling_or_buffering_and_leaves_a_running_trial_alone(
        storage, tmp_path):
    flag = str(tmp_path / "go")
    executor = DaskExecutor(n_workers=1)
    async with TaskGroup() as group:
        experiment = group.create_task(at.run_async(
            waits_for_flag, config={"flag": flag}, storage_path=storage, verbose=0, executor=executor))
        deadline = time.time() + 60
        while not (executor._runners and any(r.writer is not None for r in executor._runners._by_key.values())):
            assert time.time() < deadline, "the trial's runner never connected"
            await asyncio.sleep(0.1)
        (running,) = [r for r in executor._runners._by_key.values() if r.writer is not None]

        # A pickle where the hello goes is never loaded.
        bomb = tmp_path / "unpickled"
        answer, _ = await asyncio.to_thread(_send_and_read, executor, encode(("hello", _Unpickled(str(bomb)))))
        assert answer == b"" and not bomb.exists()

        # A length of 4 GiB is refused at once, not buffered while the sender goes on.
        answer, took = await asyncio.to_thread(_send_and_read, executor, b"\xff\xff\xff\xff" + b"x" * 65536)
        assert answer == b"" and took < 5, took

        # A second hello for the running trial's task is refused; the trial is not touched.
        hello = hello_frame({"key": running.key, "nonce": "impostor", "worker": "tls://127.0.0.1:1"})
        answer, _ = await asyncio.to_thread(_send_and_read, executor, hello)
        assert FrameDecoder().feed(answer) == [("ABANDON", "impostor")]
        assert running.writer is not None and not running.closed
        with open(flag, "w"):
            pass
    analysis = experiment.result()
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 0, trial.error
    assert [r["step"] for r in analysis.trial_results(trial.trial_id)] == [1, 2]
