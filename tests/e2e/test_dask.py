"""DaskExecutor with real LocalClusters: several worker processes, real queues, real kills."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import psutil
import pytest

import asynctune as at
from asynctune import Callback, CoroutineScheduler, TrialEnded, TrialResult
from asynctune.core.resources import Placement

distributed = pytest.importorskip(
    "distributed", reason="dask's distributed is not installed: pip install 'asynctune[dask]'")

from asynctune.executors.dask.executor import DaskExecutor  # noqa: E402
from asynctune.executors.dask.roster import WorkerRoster, worker_inventory  # noqa: E402
from tests.helpers.paths import REPO_ROOT  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def multiprocessing_resource_tracker():
    """LocalCluster starts workers with multiprocessing, whose resource tracker is one helper
    process per interpreter that lives as long as it does: start it before the per-test check
    of leftover processes takes its snapshot."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def counting(config):
    """A counter kept in the checkpoint: a resumed trial continues, a restarted one starts at 0."""
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    while config.get("wait_for") and not os.path.exists(config["wait_for"]):
        time.sleep(0.01)
    while count < config.get("until", 4):
        count += 1
        time.sleep(config.get("sleep", 0))
        print(f"count {count}")
        at.report(count=count, restored=checkpoint is not None, checkpoint={"count": count})


class Powers(at.Trainable):
    """base, base**2, ...; checkpoints its latest power as a file."""

    def setup(self, config):
        self.value = 1

    def step(self):
        self.value *= self.config["base"]
        return {"value": self.value}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "value.txt"), "w") as f:
            f.write(str(self.value))


# --- without a cluster --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"address": 8786}, "address must be"),
    ({"n_workers": 0}, "n_workers must be"),
    ({"n_workers": 2, "address": "tcp://127.0.0.1:8786"}, "n_workers sizes the LocalCluster"),
    ({"worker_resources": {"GPU": -1}}, "worker_resources must map"),
    ({"worker_resources": {"GPU": 1}, "address": "tcp://127.0.0.1:8786"}, "worker_resources applies"),
    ({"min_workers": 0}, "min_workers must be"),
    ({"start_timeout_s": 0}, "start_timeout_s must be"),
    ({"kill_grace_s": -1}, "kill_grace_s must be"),
    ({"channel": "tcp"}, "channel must be one of auto, direct, queue"),
    ({"connect_timeout_s": 0}, "connect_timeout_s must be"),
    # Before: a TypeError from a comparison ('>' not supported between 'str' and 'int').
    ({"start_timeout_s": None}, "start_timeout_s must be a number"),
    ({"kill_grace_s": "3"}, "kill_grace_s must be a number"),
    ({"connect_timeout_s": "1"}, "connect_timeout_s must be a number"),
    # Before: accepted; start() waited start_timeout_s for workers the LocalCluster never has.
    ({"n_workers": 2, "min_workers": 3}, "min_workers=3 exceeds the 2 worker"),
    ({"min_workers": 10_000}, "min_workers=10000 exceeds the"),
    ({"address": " "}, "address is empty"),
], ids=["address-int", "n_workers-0", "n_workers-with-address", "resources-negative",
        "resources-with-address", "min_workers-0", "start_timeout-0", "kill_grace-negative", "channel-unknown",
        "connect_timeout-0", "start_timeout-none", "kill_grace-str", "connect_timeout-str",
        "min_workers-over-n_workers", "min_workers-over-cpus", "address-empty"])
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DaskExecutor(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {}, {"address": "tcp://127.0.0.1:8786"}, {"n_workers": 3, "worker_resources": {"GPU": 1}},
    {"min_workers": 4, "address": "tcp://127.0.0.1:8786", "start_timeout_s": 5, "kill_grace_s": 0},
    {"n_workers": 2, "min_workers": 2},
], ids=["local", "address", "local-sized", "options", "min_workers-all"])
def test_accepts_good_arguments(kwargs):
    assert DaskExecutor(**kwargs).client is None  # nothing starts before start()


@pytest.mark.parametrize("info, cpus, gpus", [
    ({"nthreads": 4, "resources": {}}, 4.0, 0),
    ({"nthreads": 1, "resources": {"GPU": 2}}, 1.0, 2),
    ({"nthreads": 8, "resources": {"CPU": 2, "GPU": 1}}, 2.0, 1),
    ({"nthreads": 1, "resources": {"GPU": 0.5}}, 1.0, 1),
], ids=["threads", "gpus", "cpu-resource", "fractional-gpu"])
def test_a_worker_becomes_a_host_inventory(info, cpus, gpus):
    inventory = worker_inventory("tcp://10.0.0.1:4000", {**info, "name": "gpu-3", "memory_limit": 2**30})
    assert (inventory.name, inventory.cpus, len(inventory.gpus), inventory.memory_mb) == ("gpu-3", cpus, gpus, 1024.0)
    assert worker_inventory("tcp://10.0.0.1:4000", {"nthreads": 1}).name == "tcp://10.0.0.1:4000"  # unnamed worker


@pytest.mark.parametrize("declared, placement, expected", [
    ({}, Placement("w", 1.0), {}),
    ({"GPU": 1}, Placement("w", 1.0, [(0, 0.5)]), {"GPU": 0.5}),
    ({"CPU": 4, "GPU": 2}, Placement("w", 2.0, [(0, 1.0), (1, 1.0)]), {"CPU": 2.0, "GPU": 2.0}),
], ids=["threads-only", "fractional-gpu", "cpu-and-gpus"])
def test_placement_maps_to_dask_resources(declared, placement, expected):
    workers = WorkerRoster()
    workers.note({"tcp://10.0.0.1:4000": {"nthreads": 1, "resources": declared}})
    assert workers.resources_for(placement) == expected


def test_the_core_never_imports_dask():
    code = ("import sys, asynctune, asynctune.api, asynctune.controller.loop, asynctune.executors.local; "
            "assert not {'dask', 'distributed'} & set(sys.modules), sorted(m for m in sys.modules if 'dask' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


async def test_a_clear_error_names_the_extra_when_dask_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'asynctune\[dask\]'"):
        await DaskExecutor().start()


# --- with a LocalCluster ----------------------------------------------------------------------

# The LocalCluster a DaskExecutor starts uses TLS: trials talk to the driver directly, or
# through the scheduler's queues when told to (as on a cluster without TLS).
both_channels = pytest.mark.parametrize("channel", ["direct", "queue"])

@both_channels
def test_whole_experiment_with_asha_streams_results_and_keeps_everything_on_disk(storage, channel):
    def quadratic(config):
        if config["x"] == 5:
            raise ValueError("bad x")
        for step in range(4):
            at.report(loss=(config["x"] - 3) ** 2 + 1 / (step + 1), shape=[step, [step]])
            time.sleep(0.05)

    # x=0 starts only once x=3 or x=2 has freed a worker, so its first loss meets a better one
    # at the first rung: ASHA stops it there. That takes the result while the trial runs.
    analysis = at.run(quadratic, config={"x": at.grid_search([3, 2, 4, 0, 5])}, metric="loss", mode="min",
                      scheduler=at.ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
                      executor=DaskExecutor(n_workers=2, channel=channel), storage_path=storage, name="quad", verbose=0)
    assert analysis.best_config == {"x": 3}
    trials = {t.config["x"]: t for t in analysis.trials}
    assert {x: t.status for x, t in trials.items()} == {  # ran to max_t: FINISHED; stopped at a rung: EARLY_STOPPED
        **{x: at.Status.FINISHED if trials[x].num_results == 4 else at.Status.EARLY_STOPPED for x in (3, 2, 4, 0)},
        5: at.Status.ERROR}
    assert trials[5].error == "ValueError: bad x" and trials[5].num_results == 0
    assert trials[3].num_results == 4 and trials[0].num_results == 1  # promoted to max_t / stopped at rung 1
    for x in (3, 2, 4, 0):
        results = analysis.trial_results(trials[x].trial_id)
        assert [r["training_iteration"] for r in results] == list(range(1, len(results) + 1))
        assert results[-1]["shape"] == [len(results) - 1, [len(results) - 1]]  # lists stay lists
        with open(os.path.join(trials[x].path, "result.jsonl")) as f:
            assert [json.loads(line)["loss"] for line in f] == [r["loss"] for r in results]
    used = {t.last_result["pid"] for t in analysis.trials if t.last_result}
    assert len(used) == 2  # both Dask worker processes ran trials
    assert os.getpid() not in used


class ListeningSockets(Callback):
    """At the first result, every TCP socket that this process and its children listen on."""

    def __init__(self) -> None:
        self.addresses: list[str] = []

    def on_trial_result(self, trial, result):
        if not self.addresses:
            me = psutil.Process()
            for proc in [me, *me.children(recursive=True)]:
                self.addresses += [c.laddr.ip for c in proc.net_connections(kind="tcp")
                                   if c.status == psutil.CONN_LISTEN]


@both_channels
def test_decisions_reach_a_class_trainable_before_its_next_step(storage, channel):
    class StopAtThree(at.Scheduler):
        def on_trial_result(self, trial, result):
            return at.STOP if result["training_iteration"] >= 3 else at.CONTINUE

    sockets = ListeningSockets()
    analysis = at.run(Powers, config={"base": at.grid_search([2, 3, 10])}, scheduler=StopAtThree(),
                      checkpoint_frequency=2, executor=DaskExecutor(n_workers=2, channel=channel), storage_path=storage,
                      verbose=0, callbacks=[sockets])
    # The LocalCluster's scheduler, nannies and workers listen, on loopback only (no dashboard).
    assert len(sockets.addresses) >= 5 and set(sockets.addresses) == {"127.0.0.1"}
    assert [t.last_result["value"] for t in analysis.trials] == [8, 27, 1000]
    assert [t.num_results for t in analysis.trials] == [3, 3, 3]
    for trial in analysis.trials:
        assert trial.checkpoint.endswith("checkpoint_000002")
        with open(os.path.join(trial.checkpoint, "value.txt")) as f:
            assert int(f.read()) == trial.config["base"] ** 2


class PauseUntilOtherEnds(CoroutineScheduler):
    """Pause trial "a" at iteration 2; resume it when trial "b" ends. Meanwhile "c" took a's
    worker, so "a" resumes on the worker "b" freed: another process. "b" starts counting only
    once "a" is paused (the `flag` file), so it cannot end first, however the workers start."""

    def __init__(self, flag: str) -> None:
        super().__init__()
        self.flag = flag

    async def run(self):
        paused = None
        async for event in self.events():
            if (isinstance(event, TrialResult) and event.trial.config["role"] == "a"
                    and event.result["training_iteration"] == 2 and paused is None):
                self.pause(event.trial)
                paused = event.trial
                open(self.flag, "w").close()
            elif isinstance(event, TrialEnded) and event.trial.config["role"] == "b" and paused is not None:
                self.resume(paused)


@both_channels
def test_a_paused_trial_resumes_on_another_worker_from_its_checkpoint(storage, channel, tmp_path):
    plan = {"a": {"until": 4}, "b": {"until": 6, "sleep": 0.1}, "c": {"until": 14, "sleep": 0.1}}
    flag = str(tmp_path / "a-paused")
    analysis = at.run(counting, config={"role": at.grid_search(["a", "b", "c"]),
                                        "until": at.sample_from(lambda c: plan[c["role"]]["until"]),
                                        "sleep": at.sample_from(lambda c: plan[c["role"]].get("sleep", 0.02)),
                                        "wait_for": at.sample_from(lambda c: flag if c["role"] == "b" else None)},
                      scheduler=PauseUntilOtherEnds(flag), executor=DaskExecutor(n_workers=2, channel=channel),
                      storage_path=storage, verbose=0)
    paused = next(t for t in analysis.trials if t.config["role"] == "a")
    results = analysis.trial_results(paused.trial_id)
    assert [r["count"] for r in results] == [1, 2, 3, 4]  # continued, not restarted
    assert [r["restored"] for r in results] == [False, False, True, True]
    assert results[0]["pid"] == results[1]["pid"] != results[2]["pid"] == results[3]["pid"]
    assert all(t.status is at.Status.TERMINATED for t in analysis.trials)
    with open(os.path.join(paused.path, "stdout.txt")) as f:
        assert f.read().split("\n")[:4] == ["count 1", "count 2", "count 3", "count 4"]


def reports_its_task(config):
    from distributed.worker import thread_state

    for step in range(2):
        at.report(step=step, task=thread_state.key)


@pytest.mark.parametrize("channel, tasks", [("direct", 1), ("queue", 6)])
def test_the_direct_channel_runs_one_workers_trials_in_one_task(storage, channel, tasks):
    analysis = at.run(reports_its_task, num_samples=6, executor=DaskExecutor(n_workers=1, channel=channel),
                      storage_path=storage, verbose=0)
    assert [t.num_results for t in analysis.trials] == [2] * 6
    # Each trial after the first went to the runner already on the worker: no task, no import.
    assert len({t.last_result["task"] for t in analysis.trials}) == tasks


def test_a_worker_that_cannot_reach_the_driver_sends_its_trials_through_the_queues(storage, monkeypatch, caplog):
    from asynctune.executors.dask import channel as dask_channel

    start = dask_channel.Runners.start

    async def unreachable(self, host, security):
        await start(self, host, security)
        self.address = f"tls://127.0.0.1:{_free_port()}"  # where nothing listens: the connect fails for real
        return self.address

    monkeypatch.setattr(dask_channel.Runners, "start", unreachable)
    with caplog.at_level("WARNING", logger="asynctune.executors.dask.executor"):
        analysis = at.run(reports_its_task, num_samples=3, storage_path=storage, verbose=0,
                          executor=DaskExecutor(n_workers=1, connect_timeout_s=0.5))
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 3
    assert [[r["step"] for r in analysis.trial_results(t.trial_id)] for t in analysis.trials] == [[0, 1]] * 3
    fallbacks = [r.getMessage() for r in caplog.records if "could not reach the driver" in r.getMessage()]
    assert len(fallbacks) == 3 and all("through the scheduler's queues" in m for m in fallbacks)
    assert len({t.last_result["task"] for t in analysis.trials}) == 3  # one queue task per trial


async def test_a_cluster_without_tls_gets_the_queues_and_the_log_says_why(storage, caplog):
    async with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=None, asynchronous=True) as cluster:
        with pytest.raises(at.ExecutorError, match="channel='direct' needs a cluster with TLS"):
            await at.run_async(reports_its_task, storage_path=storage, verbose=0,
                               executor=DaskExecutor(cluster, channel="direct"))
        with caplog.at_level("WARNING", logger="asynctune.executors.dask.executor"):
            executor = DaskExecutor(cluster)
            analysis = await at.run_async(reports_its_task, storage_path=storage, verbose=0, executor=executor)
    assert analysis.trials[0].num_results == 2 and executor._runners is None
    assert any("does not use TLS" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("closed", ["client", "cluster"])
def test_a_closed_client_or_cluster_is_a_clear_error_at_once(storage, closed):
    # Before: a closed Client raised AttributeError ('NoneType' object has no attribute 'address');
    # a closed Cluster spent start_timeout_s dialling its dead scheduler, then "could not reach".
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        given = distributed.Client(cluster) if closed == "client" else cluster
        given.close()
        start = time.time()
        with pytest.raises(at.ExecutorError, match=f"the {type(given).__name__} it was given is closed"):
            at.run(reports_its_task, storage_path=storage, verbose=0,
                   executor=DaskExecutor(given, start_timeout_s=10))
        assert time.time() - start < 5


def test_one_executor_runs_two_experiments_one_after_the_other(storage):
    # Before: the second run failed before any trial with "ResourcePool: host names must be
    # distinct, got ['0', '0']" (the first cluster's workers were still on its roster).
    executor = DaskExecutor(n_workers=1)
    for name in ("first", "second"):
        analysis = at.run(reports_its_task, num_samples=2, name=name, executor=executor, storage_path=storage,
                          verbose=0)
        assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 2
        assert [inv.name for inv in executor.inventories()] == ["0"]
        assert executor.client is None and executor.cluster is None  # closed after each


async def test_a_plain_address_of_a_tls_scheduler_says_to_use_tls(storage):
    # Before: only "... within 10s: ... ConnectionResetError: [Errno 104] Connection reset by peer".
    from distributed.security import Security

    async with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        protocol="tls", security=Security.temporary(), dashboard_address=None,
                                        asynchronous=True) as cluster:
        plain = cluster.scheduler_address.replace("tls://", "tcp://")
        with pytest.raises(at.ExecutorError, match="uses TLS resets plain connections: give its tls:// address"):
            await at.run_async(reports_its_task, storage_path=storage, verbose=0,
                               executor=DaskExecutor(plain, start_timeout_s=10))


class KillWorkerAt(Callback):
    """Kills the Dask worker process under a trial (SIGKILL, from the driver) at one result."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.killed: list[int] = []

    def on_trial_result(self, trial, result):
        if result["count"] == self.count and not self.killed:
            psutil.Process(result["pid"]).kill()
            self.killed.append(result["pid"])


@both_channels
def test_a_killed_worker_fails_the_attempt_and_the_trial_finishes_elsewhere(storage, channel):
    killer = KillWorkerAt(2)
    start = time.time()
    analysis = at.run(counting, config={"until": 5, "sleep": 0.05}, max_failures=1, callbacks=[killer],
                      executor=DaskExecutor(n_workers=2, channel=channel), storage_path=storage, verbose=0)
    assert time.time() - start < 40
    trial = analysis.trials[0]
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    assert "Dask worker" in trial.error
    results = analysis.trial_results(trial.trial_id)
    assert [r["count"] for r in results] == [1, 2, 3, 4, 5]  # resumed from checkpoint 2
    assert [r["restored"] for r in results] == [False, False, True, True, True]
    assert {r["pid"] for r in results[2:]}.isdisjoint(killer.killed)


class PlacementAtError(KillWorkerAt):
    """Also notes, as the killed trial's attempt ends, the address the executor would place the
    next trial on host "0" at, and the killed worker's."""

    def __init__(self, count: int, executor: DaskExecutor) -> None:
        super().__init__(count)
        self.executor = executor
        self.addresses: dict[str, str | None] = {}

    def on_trial_result(self, trial, result):
        if result["count"] == self.count and not self.killed:
            self.addresses["killed"] = self.executor.workers.address_of("0")
        super().on_trial_result(trial, result)

    def on_trial_error(self, trial):
        self.addresses["at_error"] = self.executor.workers.address_of("0")


@both_channels
def test_without_retries_a_killed_worker_is_an_error_and_its_restarted_worker_runs_the_next_trial(storage, channel):
    executor = DaskExecutor(n_workers=1, channel=channel)
    killer = PlacementAtError(1, executor)
    analysis = at.run(counting, config={"until": 3}, num_samples=2, callbacks=[killer],
                      executor=executor, storage_path=storage, verbose=0)
    # The attempt ends only once the driver no longer places trials at the dead worker's address:
    # Dask would hold a task pinned there while no worker runs ("no-worker") forever, even after
    # the nanny restarted the worker under a new address (the experiment hung).
    assert killer.addresses["killed"] is not None and killer.addresses["at_error"] != killer.addresses["killed"]
    first, second = analysis.trials
    assert first.status is at.Status.ERROR and "Dask worker" in first.error and first.num_results == 1
    # The nanny restarted worker "0" under a new address: the same host, available again.
    assert second.status is at.Status.TERMINATED and second.num_results == 3
    assert second.last_result["pid"] not in killer.killed


async def test_gpu_trials_run_only_on_the_worker_that_has_a_gpu(storage):
    def where(config):
        at.report(worker=distributed.get_worker().name, gpus=at.get_trial_resources()["gpus"])
        time.sleep(0.05)

    async with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=None, asynchronous=True) as cluster, \
            distributed.Nanny(cluster.scheduler_address, nthreads=1, host="127.0.0.1", name="gpu-worker",
                              resources={"GPU": 1}):
        executor = DaskExecutor(cluster, min_workers=2)
        analysis = await at.run_async(
            where, config={"gpu": at.grid_search([1, 0, 0.5, 1, 0, 0.5])}, executor=executor,
            resources_per_trial=lambda config: {"cpu": 1, "gpu": config["gpu"]}, storage_path=storage, verbose=0)
        inventories = {inv.name: len(inv.gpus) for inv in executor.inventories()}
    assert inventories == {"gpu-worker": 1, "0": 0}
    ran_on = {t.config["gpu"]: set() for t in analysis.trials}
    for trial in analysis.trials:
        ran_on[trial.config["gpu"]].add(trial.last_result["worker"])
        assert trial.status is at.Status.TERMINATED
    assert ran_on[1] == ran_on[0.5] == {"gpu-worker"}
    for trial in analysis.trials:
        assert [(g["index"], g["fraction"]) for g in trial.last_result["gpus"]] == (
            [(0, trial.config["gpu"])] if trial.config["gpu"] else [])


@pytest.mark.parametrize("tls", [True, False], ids=["tls-direct", "tcp-queue"])
async def test_time_budget_interrupts_trials_busy_between_reports(storage, tls):
    def stubborn(config):
        at.report(started=1)
        while True:  # never reports again: only an interrupt of its thread stops it
            time.sleep(0.01)

    from distributed.security import Security

    security = {"protocol": "tls", "security": Security.temporary()} if tls else {}
    async with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                        dashboard_address=None, asynchronous=True, **security) as cluster, \
            distributed.Client(cluster, asynchronous=True) as client:
        start = time.time()
        analysis = await at.run_async(stubborn, num_samples=2, time_budget_s=1.5, storage_path=storage, verbose=0,
                                      executor=DaskExecutor(cluster, kill_grace_s=1))
        assert time.time() - start < 15
        # Not our cluster, so no worker restart: the interrupts alone must free both threads.
        deadline = time.time() + 5
        while (busy := await client.run(lambda dask_worker: len(dask_worker.state.executing))) != {
                cluster.workers[0].worker_address: 0} and time.time() < deadline:
            await asyncio.sleep(0.1)
        assert list(busy.values()) == [0]
    assert analysis.status == "STOPPED"
    assert [t.num_results for t in analysis.trials] == [1, 1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_losing_the_scheduler_ends_the_experiment_and_resume_finishes_it(storage):
    port = _free_port()
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], stderr=subprocess.DEVNULL)

    class KillSchedulerAt(Callback):
        def on_trial_result(self, trial, result):
            if result["count"] == 2 and scheduler.poll() is None:
                scheduler.kill()

    try:
        async with distributed.Nanny(f"tcp://127.0.0.1:{port}", nthreads=2, host="127.0.0.1",
                                     death_timeout=60) as nanny:
            start = time.time()
            with pytest.raises(at.ExecutorLost, match="scheduler was lost.*resume"):
                await at.run_async(counting, config={"until": 20, "sleep": 0.05}, num_samples=2, name="lost",
                                   executor=DaskExecutor(f"tcp://127.0.0.1:{port}", start_timeout_s=30),
                                   callbacks=[KillSchedulerAt()], storage_path=storage, verbose=0)
            assert time.time() - start < 30
            await nanny.close(timeout=5)
    finally:
        scheduler.kill()
        scheduler.wait()
    with open(os.path.join(storage, "lost", "experiment.json")) as f:
        state = json.load(f)
    assert state["status"] == "ERROR"
    assert [t["status"] for t in state["trials"]] == ["PENDING", "PENDING"]  # resumable, not finished
    analysis = at.resume(os.path.join(storage, "lost"), executor=DaskExecutor(n_workers=2), callbacks=[], verbose=0)
    for trial in analysis.trials:
        assert trial.status is at.Status.TERMINATED
        results = analysis.trial_results(trial.trial_id)
        assert [r["count"] for r in results] == list(range(1, 21))  # each result once, none lost
        assert results[-1]["restored"] is True  # continued from a checkpoint, not from scratch


_DRIVER = """
import os, sys, time
import asynctune as at
from asynctune import DaskExecutor
from distributed.security import Security

def busy(config):
    at.report(started=1)
    while True:  # a long epoch: it reports again only much later
        time.sleep(0.01)

pem = os.environ.get("TEST_CLUSTER_PEM")  # the cluster's certificate and key, as PEM text
security = Security(tls_ca_file=pem, tls_client_cert=pem, tls_client_key=pem, require_encryption=True) if pem else None
at.run(busy, num_samples=2, executor=DaskExecutor(sys.argv[1], security=security), storage_path=sys.argv[2],
       verbose=0)
"""


@pytest.mark.parametrize("tls", [True, False], ids=["tls-direct", "tcp-queue"])
def test_a_killed_driver_frees_the_threads_of_its_trials_busy_between_reports(storage, tmp_path, tls):
    # Before: the scheduler forgot the tasks of the lost client, but a trial between two reports
    # kept its worker's thread (here for ever; in a lab, until the end of its epoch).
    from distributed.security import Security

    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    security = Security.temporary() if tls else None
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if security is not None:  # one self-signed certificate: CA, certificate and key in one PEM text
        env["TEST_CLUSTER_PEM"] = security.tls_client_cert + security.tls_client_key
    tls_args = {"protocol": "tls", "security": security} if tls else {}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=None, **tls_args) as cluster, distributed.Client(cluster) as client:
        def executing() -> int:
            return sum(client.run(lambda dask_worker: len(dask_worker.state.executing)).values())

        driver = subprocess.Popen([sys.executable, str(script), cluster.scheduler_address, storage], env=env,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while executing() < 2 and time.time() < deadline:
                time.sleep(0.2)
            assert executing() == 2
            time.sleep(0.5)  # both trials past their first report, busy
        finally:
            driver.kill()
            driver.wait()
        deadline = time.time() + 10
        while executing() and time.time() < deadline:
            time.sleep(0.2)
        assert executing() == 0


@pytest.mark.parametrize("child", ["exits", "raises", "returns"])
def test_a_child_a_dask_trial_forked_never_speaks_for_the_trial(storage, child):
    # Before, the child came back into the Dask worker's code and wrote on the trial's channel:
    # the experiment hung (300 s here) instead of finishing the trial.
    from tests.e2e.test_worker_faults import _forks

    analysis = at.run(_forks, config={"child": child}, raise_on_failed_trial="never", time_budget_s=60,
                      storage_path=storage, verbose=0, executor=DaskExecutor(n_workers=1))
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 0, trial.error
    assert [(r["training_iteration"], r["step"], r.get("child")) for r in analysis.trial_results(trial.trial_id)] == \
        [(1, 1, None), (2, 2, False), (3, 3, None)]
