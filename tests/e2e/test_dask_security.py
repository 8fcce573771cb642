"""The Dask cluster a DaskExecutor starts lets in only its own clients and workers, and serves
no HTTP; a user's TLS cluster works when its Security is passed."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import psutil
import pytest

import asynctune as at
from asynctune.core.compat import TaskGroup

distributed = pytest.importorskip(
    "distributed", reason="dask's distributed is not installed: pip install 'asynctune[dask]'")

from distributed.security import Security  # noqa: E402

from asynctune.executors.dask.executor import DaskExecutor  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def multiprocessing_resource_tracker():
    """Started before the per-test check of leftover processes (see test_dask.py)."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def waits_for_flag(config):
    at.report(step=1)
    while not os.path.exists(config["flag"]):
        time.sleep(0.05)
    at.report(step=2)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _listening_ports() -> set[int]:
    """TCP ports this process and its children listen on."""
    ports = set()
    for process in [psutil.Process()] + psutil.Process().children(recursive=True):
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        ports.update(c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN)
    return ports


async def _refused(address: str, security: Security | None = None) -> Exception | None:
    """The error a Client gets connecting to `address`, or None if it got in."""
    try:
        client = await distributed.Client(address, asynchronous=True, timeout=2, security=security,
                                          set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is a refusal
        return exc
    await client.close()
    return None


def _channel_answer(address: str, security: Security | None = None) -> list | Exception:
    """What the driver's channel answers a runner's introduction for a task it does not know
    (plain TCP, or TLS with `security`'s worker certificate): its messages, or the error."""
    from asynctune.executors.dask.hello import hello_frame
    from asynctune.worker.protocol import FrameDecoder

    host, port = address.removeprefix("tls://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            sock = security.get_connection_args("worker")["ssl_context"].wrap_socket(raw) if security else raw
            sock.sendall(hello_frame({"key": "not-a-task", "nonce": "n1", "worker": "tls://127.0.0.1:1"}))
            data = sock.recv(65536)  # under TLS 1.3 a refused certificate shows here
            if not data:
                raise EOFError("closed without an answer")
            return FrameDecoder().feed(data)
    except Exception as exc:  # noqa: BLE001 - any failure is a refusal
        return exc


async def test_the_cluster_it_starts_refuses_clients_without_its_credentials_and_serves_no_http(storage, tmp_path):
    flag = str(tmp_path / "go")
    executor = DaskExecutor(n_workers=2)
    async with TaskGroup() as group:
        experiment = group.create_task(at.run_async(
            waits_for_flag, config={"flag": flag}, num_samples=2, storage_path=storage, verbose=0, executor=executor))
        deadline = time.time() + 60
        while (executor.client is None or not executor._runs) and time.time() < deadline:
            await asyncio.sleep(0.1)
        scheduler = executor.cluster.scheduler
        assert scheduler.address.startswith("tls://127.0.0.1:")
        workers = list(scheduler.workers.values())
        comm_ports = {_port(scheduler.address)} | {_port(w.address) for w in workers} | {_port(w.nanny) for w in workers}

        # Plain TCP (no certificate), and TLS with a certificate of another CA: both refused, by
        # the scheduler and by a worker (which would run code for whoever gets in).
        for address in (scheduler.address, workers[0].address):
            assert await _refused(address.replace("tls://", "tcp://")) is not None
            assert await _refused(address, Security.temporary()) is not None
        assert await _refused(scheduler.address, executor.cluster.security) is None  # the right key gets in

        # The driver's own listener (the trials' direct channel) is TLS on loopback, and lets
        # in only a peer with the cluster's certificate: a plain connection and one with
        # another CA's certificate are refused before a byte of pickle is read.
        channel = executor._runners.address
        assert channel.startswith("tls://127.0.0.1:")
        plain, other_ca, ours = [await asyncio.to_thread(_channel_answer, channel, security)
                                 for security in (None, Security.temporary(), executor.cluster.security)]
        assert isinstance(plain, Exception) and isinstance(other_ca, Exception), (plain, other_ca)
        assert ours == [("ABANDON", "n1")]  # the cluster's certificate gets in (and an unknown task is refused)

        listening = _listening_ports()
        comm_ports.add(_port(channel))
        assert listening == comm_ports, f"listening: {sorted(listening)}, TLS comms: {sorted(comm_ports)}"
        assert 8787 not in listening
        with open(flag, "w"):
            pass
    analysis = experiment.result()
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
    assert [t.last_result["step"] for t in analysis.trials] == [2, 2]


async def test_a_users_tls_cluster_works_with_its_security_and_not_without(storage, tmp_path):
    security = Security.temporary()
    async with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        protocol="tls", security=security, dashboard_address=None,
                                        asynchronous=True) as cluster:
        (tmp_path / "go").touch()
        config = {"flag": str(tmp_path / "go")}
        with pytest.raises(at.ExecutorError, match="uses TLS: pass security="):
            await at.run_async(waits_for_flag, config=config, storage_path=storage, verbose=0,
                               executor=DaskExecutor(cluster.scheduler_address, start_timeout_s=3))
        with pytest.raises(at.ExecutorError, match="could not reach the scheduler"):  # another cluster's key
            await at.run_async(waits_for_flag, config=config, storage_path=storage, verbose=0,
                               executor=DaskExecutor(cluster.scheduler_address, start_timeout_s=3,
                                                     security=Security.temporary()))
        for executor in (DaskExecutor(cluster.scheduler_address, security=security), DaskExecutor(cluster)):
            analysis = await at.run_async(waits_for_flag, config=config, storage_path=storage, verbose=0,
                                          executor=executor)
            assert analysis.trials[0].last_result["step"] == 2


def test_security_must_be_a_dask_security():
    with pytest.raises(ValueError, match="security must be a distributed.security.Security"):
        DaskExecutor("tls://127.0.0.1:8786", security="cert.pem")
    with pytest.raises(ValueError, match="security applies to a scheduler address"):
        DaskExecutor(security=Security.temporary())
