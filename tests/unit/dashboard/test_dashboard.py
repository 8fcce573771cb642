"""The dashboard: its JSON API on real experiment directories (finished and being written),
refusal of paths outside the root, and the command (the page in Chromium: tests/e2e/test_dashboard_browser.py)."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the dashboard needs aiohttp: pip install 'asynctune[dashboard]'")
from yarl import URL  # noqa: E402  (comes with aiohttp)

import asynctune as at  # noqa: E402
from asynctune.analysis.experiment import ExperimentAnalysis  # noqa: E402
from asynctune.dashboard import serve, start_beside  # noqa: E402
from asynctune.reporting.decisions import read_decisions  # noqa: E402
from asynctune.store.layout import flatten_config, read_results  # noqa: E402
from tests.helpers.dashboard_runs import two_experiments  # noqa: E402
from tests.helpers.paths import REPO_ROOT  # noqa: E402


def slow_descend(config):
    for step in range(1, 7):
        time.sleep(0.15)
        at.report(loss=abs(config["x"]) / step)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return two_experiments(str(tmp_path_factory.mktemp("dashboard") / "results"))


async def get(session: aiohttp.ClientSession, url: str, path: str) -> tuple[int, object]:
    """GET a path exactly as written: no normalisation of '..' or of %-escapes on our side."""
    async with session.get(URL(url.rstrip("/") + path, encoded=True), allow_redirects=False) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def test_experiments_are_listed_with_status_trials_and_best(root):
    async with serve(root) as url, aiohttp.ClientSession() as session:
        status, body = await get(session, url, "/api/experiments")
    assert status == 200
    by_name = {e["name"]: e for e in body["experiments"]}
    assert set(by_name) == {"asha", "fifo"}
    for name, trials in (("asha", 8), ("fifo", 3)):
        analysis = ExperimentAnalysis(os.path.join(root, name))
        best = analysis.get_best_trial(scope="all")
        assert by_name[name]["status"] == "FINISHED"
        assert by_name[name]["trials"] == by_name[name]["FINISHED"] + by_name[name]["EARLY_STOPPED"] == trials
        assert by_name[name]["best_trial_id"] == best.trial_id
        assert by_name[name]["best"] == pytest.approx(min(r["loss"] for r in analysis.trial_results(best.trial_id)))
        assert by_name[name]["objectives"] == [{"metric": "loss", "mode": "min"}]
        assert "path" not in by_name[name]


async def test_trial_table_has_config_latest_best_and_decisions(root):
    directory = os.path.join(root, "asha")
    analysis = ExperimentAnalysis(directory)
    async with serve(root) as url, aiohttp.ClientSession() as session:
        status, body = await get(session, url, "/api/experiments/asha/trials")
    assert status == 200
    rows = {row["trial_id"]: row for row in body["trials"]}
    assert set(rows) == {t.trial_id for t in analysis.trials}
    decisions = read_decisions(directory)
    assert any(d["decision"] == "STOP" for d in decisions), "ASHA stopped no trial: the test shows no decisions"
    for trial in analysis.trials:
        results = read_results(trial.path)
        row = rows[trial.trial_id]
        assert row["config"] == flatten_config(trial.config) and "net/depth" in row["config"]
        assert row["latest"] == pytest.approx(results[-1]["loss"])
        assert row["best"] == pytest.approx(min(r["loss"] for r in results))
        assert row["iteration"] == results[-1]["training_iteration"] == row["num_results"]
        assert [d["decision"] for d in row["decisions"]] == [d["decision"] for d in decisions
                                                           if d["trial_id"] == trial.trial_id]


async def test_results_curves_and_best_so_far_are_what_is_on_disk(root):
    directory = os.path.join(root, "asha")
    analysis = ExperimentAnalysis(directory)
    trial = analysis.trials[0]
    async with serve(root) as url, aiohttp.ClientSession() as session:
        _, results = await get(session, url, f"/api/experiments/asha/trials/{trial.trial_id}/results")
        _, curves = await get(session, url, "/api/experiments/asha/curves")
        _, best = await get(session, url, "/api/experiments/fifo/best_so_far")
        _, epochs = await get(session, url, "/api/experiments/asha/curves?metric=epoch")
    assert results["results"] == read_results(trial.path)
    assert curves["metric"] == "loss" and curves["mode"] == "min"
    for t in analysis.trials:
        assert curves["curves"][t.trial_id] == [[r["training_iteration"], pytest.approx(r["time_total_s"]),
                                                 pytest.approx(r["loss"])] for r in read_results(t.path)]
    assert curves["decisions"] and {d["trial_id"] for d in curves["decisions"]} <= set(curves["curves"])
    assert curves["best_so_far"] == [[pytest.approx(p["time_s"]), pytest.approx(p["value"]), p["trial_id"]]
                                     for p in analysis.best_so_far()]
    fifo = ExperimentAnalysis(os.path.join(root, "fifo"))
    assert [row[1] for row in best["best_so_far"]] == pytest.approx([p["value"] for p in fifo.best_so_far()])
    assert epochs["metric"] == "epoch" and all(row[2] == row[0] for c in epochs["curves"].values() for row in c)


async def test_a_consolidated_simulation_shows_its_curves(tmp_path):
    from asynctune.executors.simulated.executor import SimulatedExecutor, Workload, replay

    workload = Workload.load(os.path.join(REPO_ROOT,
                                          "benchmarks", "workloads", "mlp_digits.json.gz"))
    storage = str(tmp_path / "results")
    analysis = at.run(replay, config=workload.space(), num_samples=12, metric="val_error", mode="min", verbose=0,
                      scheduler=at.ASHAScheduler(max_t=27, grace_period=1), storage_path=storage, name="sim",
                      executor=SimulatedExecutor(workload, n_workers=4), seed=0)  # recording="consolidated"
    async with serve(storage) as url, aiohttp.ClientSession() as session:
        _, curves = await get(session, url, "/api/experiments/sim/curves")
        _, results = await get(session, url, f"/api/experiments/sim/trials/{analysis.trials[3].trial_id}/results")
    assert results["results"] == analysis.trial_results(analysis.trials[3].trial_id) != []
    assert {t: len(c) for t, c in curves["curves"].items()} == {t.trial_id: t.num_results for t in analysis.trials}


async def test_a_running_experiment_is_seen_growing(tmp_path):
    """run_async writes the experiment in this loop while the API is polled: trials and results
    appear while it runs, and the final answer matches the finished experiment."""
    storage = str(tmp_path / "results")
    os.makedirs(storage)
    seen: list[tuple[str, int, int]] = []
    async with serve(storage) as url, aiohttp.ClientSession() as session:
        run = asyncio.ensure_future(at.run_async(slow_descend, config={"x": at.grid_search([1, 2, 3, 4])}, metric="loss",
                                                 mode="min", storage_path=storage, name="live", verbose=0,
                                                 max_concurrent_trials=2))
        try:
            while not run.done():
                status, body = await get(session, url, "/api/experiments/live/trials")
                if status == 200:
                    results = sum(len(c) for c in (await get(session, url, "/api/experiments/live/curves"))[1]["curves"].values())
                    seen.append((body["experiment"]["status"], len(body["trials"]), results))
                await asyncio.sleep(0.1)
            analysis = await run
        finally:
            if not run.done():
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
        await asyncio.sleep(1.2)  # experiment.json's last rewrite
        _, final = await get(session, url, "/api/experiments/live/trials")
    running = [s for s in seen if s[0] == "RUNNING"]
    assert running, f"never saw the experiment running: {seen}"
    assert min(s[2] for s in running) < 24, f"never saw a partial result count: {seen}"
    counts = [s[2] for s in seen]
    assert counts == sorted(counts), "a result disappeared while the run went on"
    assert len({s[2] for s in running}) >= 3, f"results did not grow while polled: {seen}"
    assert final["experiment"]["status"] == "FINISHED"
    assert {r["trial_id"]: r["best"] for r in final["trials"]} == pytest.approx(
        {t.trial_id: t.metric_best for t in analysis.trials})


async def test_a_torn_last_line_waits_for_its_end_and_a_rewritten_file_is_read_again(root, tmp_path):
    copy = str(tmp_path / "root")
    shutil.copytree(os.path.join(root, "fifo"), os.path.join(copy, "fifo"))
    trial_dir = os.path.join(copy, "fifo", "trial_00000")
    path = os.path.join(trial_dir, "result.jsonl")
    before = read_results(trial_dir)
    api = "/api/experiments/fifo/trials/trial_00000/results"
    async with serve(copy) as url, aiohttp.ClientSession() as session:
        assert len((await get(session, url, api))[1]["results"]) == len(before)
        line = json.dumps({"loss": 0.5, "training_iteration": 99})
        with open(path, "a") as f:
            f.write(line[:10])  # a writer halfway through a line
        assert (await get(session, url, api))[1]["results"] == before
        with open(path, "a") as f:
            f.write(line[10:] + "\n")
        assert (await get(session, url, api))[1]["results"][-1] == {"loss": 0.5, "training_iteration": 99}
        with open(path + ".tmp", "w") as f:  # a rewind rewrites the file with fewer results
            f.write(json.dumps(before[0]) + "\n")
        os.replace(path + ".tmp", path)
        assert (await get(session, url, api))[1]["results"] == before[:1]


async def test_ids_that_point_outside_the_root_are_refused(root, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copytree(os.path.join(root, "fifo"), served / "fifo")
    outside = tmp_path / "private"
    shutil.copytree(os.path.join(root, "asha"), outside / "secret_exp")
    (outside / "secret.txt").write_text("do not serve me")
    os.symlink(outside / "secret_exp", served / "linked")  # an experiment that is really outside
    os.symlink(outside / "secret_exp" / "trial_00001", served / "fifo" / "trial_00009")
    refused = [
        "/api/experiments/..", "/api/experiments/%2E%2E", "/api/experiments/..%2Fprivate%2Fsecret_exp",
        "/api/experiments/%2E%2E%2Fprivate%2Fsecret_exp/trials", "/api/experiments/linked",
        "/api/experiments/linked/trials", "/api/experiments/.%2Ffifo/trials",
        "/api/experiments/fifo/trials/..%2F..%2Fprivate%2Fsecret_exp%2Ftrial_00001/results",
        "/api/experiments/fifo/trials/%2E%2E/results", "/api/experiments/fifo/trials/trial_00009/results",
        "/api/experiments/fifo/trials/%2Fetc%2Fpasswd/results", "/static/..%2F..%2F..%2Fprivate%2Fsecret.txt",
        "/static/%2E%2E/data.py", "/static/../data.py", "/api/experiments/fifo/trials/trial_00000/..%2F..%2F..%2Fsecret.txt",
    ]
    async with serve(str(served)) as url, aiohttp.ClientSession() as session:
        _, listing = await get(session, url, "/api/experiments")
        answers = {path: await get(session, url, path) for path in refused}
        _, ok = await get(session, url, "/api/experiments/fifo/trials/trial_00000/results")
    assert [e["name"] for e in listing["experiments"]] == ["fifo"]
    for path, (status, body) in answers.items():
        assert status in (400, 403, 404), f"{path} answered {status}: {body}"
        assert "do not serve" not in str(body)
        assert not (isinstance(body, dict) and {"results", "trials", "experiments", "metric"} & set(body)), body
    assert ok["results"]


async def test_read_only_json_only_and_loopback_names_only(root, tmp_path):
    """No method writes; no pickle is opened, even one that would run code; a request that names
    another host (a DNS-rebinding page) is refused."""
    copy = tmp_path / "root"
    shutil.copytree(os.path.join(root, "fifo"), copy / "fifo")
    marker = tmp_path / "unpickled"
    bomb = pickle.dumps(_Bomb(str(marker)))
    for name in ("run_spec.pkl", "searcher_state.pkl"):
        (copy / "fifo" / name).write_bytes(bomb)
    async with serve(str(copy)) as url, aiohttp.ClientSession() as session:
        for path in ("/", "/api/experiments", "/api/experiments/fifo", "/api/experiments/fifo/trials",
                     "/api/experiments/fifo/curves", "/api/experiments/fifo/best_so_far",
                     "/api/experiments/fifo/trials/trial_00000/results"):
            status, _ = await get(session, url, path)
            assert status == 200, path
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            async with session.request(method, url + "api/experiments/fifo") as response:
                assert response.status == 405, method
        async with session.get(url + "api/experiments", headers={"Host": "attacker.example:80"}) as response:
            assert response.status == 403
        async with session.get(url + "api/experiments", headers={"Host": f"localhost:{URL(url).port}"}) as response:
            assert response.status == 200
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert not marker.exists(), "the dashboard unpickled a file"


class _Bomb:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_start_beside_serves_from_its_own_thread_and_stops(root):
    url, stop = start_beside(root)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/experiments", timeout=10) as response:
            assert {e["name"] for e in json.load(response)["experiments"]} == {"asha", "fifo"}
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b"uPlot.iife.min.js" in response.read()
    finally:
        stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "api/experiments", timeout=5)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            start_beside(root, port=busy.getsockname()[1])


def test_start_beside_takes_a_free_port_when_the_default_one_is_taken(root):
    from asynctune.dashboard import DEFAULT_PORT

    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier test's port may be in TIME_WAIT
        try:
            busy.bind(("127.0.0.1", DEFAULT_PORT))
            busy.listen()
        except OSError:
            pass  # something else holds it already: the same situation
        url, stop = start_beside(root, experiment="asha")
        try:
            assert url.endswith("/#/asha") and f":{DEFAULT_PORT}/" not in url
            with urllib.request.urlopen(url.split("#")[0] + "api/experiments/asha", timeout=10) as response:
                assert json.load(response)["name"] == "asha"
        finally:
            stop()


def _dashboard_command(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "asynctune.cli", "dashboard", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_command_serves_warns_off_loopback_and_explains_errors(root, tmp_path):
    process = _dashboard_command(root, "--port", "0", "--host", "0.0.0.0")
    try:
        line = process.stdout.readline()
        assert " at http://" in line, line + process.stderr.read()
        port = int(line.split(" at ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/experiments/asha", timeout=10) as response:
            assert json.load(response)["trials"] == 8
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "warning: listening on 0.0.0.0" in err and "SSH port forward" in err

    missing = subprocess.run([sys.executable, "-m", "asynctune.cli", "dashboard", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = subprocess.run([sys.executable, "-m", "asynctune.cli", "dashboard", root, "--port",
                                str(busy.getsockname()[1])], capture_output=True, text=True, timeout=60)
    assert taken.returncode == 2 and "cannot listen on 127.0.0.1" in taken.stderr

    single = _dashboard_command(os.path.join(root, "fifo"), "--port", "0")  # one experiment's directory
    try:
        url = single.stdout.readline().split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/experiments", timeout=10) as response:
            assert [e["name"] for e in json.load(response)["experiments"]] == ["fifo"]
    finally:
        single.terminate()
        single.communicate(timeout=10)


def test_run_with_dashboard_true_serves_the_run_while_it_runs(tmp_path, capsys):
    seen = {}

    def train(config):
        for step in range(3):
            at.report(loss=config["x"] + step)

    class AskTheDashboard(at.Callback):
        def on_trial_result(self, trial, result):
            if "trials" in seen:
                return
            url = capsys.readouterr().err.split("dashboard at ", 1)[1].split()[0]
            base = url.split("#")[0]
            with urllib.request.urlopen(base + "api/experiments/live/trials", timeout=10) as response:
                seen["trials"] = [t["trial_id"] for t in json.load(response)["trials"]]
            seen["url"] = url

    at.run(train, config={"x": at.grid_search([1, 2])}, metric="loss", mode="min",
                  storage_path=str(tmp_path), name="live", verbose=1, dashboard=True,
                  callbacks=[AskTheDashboard()])
    assert seen["url"].startswith("http://127.0.0.1:") and seen["url"].endswith("#/live")
    assert "trial_00000" in seen["trials"]
    with pytest.raises(urllib.error.URLError):  # gone with the run
        urllib.request.urlopen(seen["url"].split("#")[0] + "api/experiments", timeout=5)


def test_dashboard_true_without_aiohttp_fails_before_any_trial(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a))
    with pytest.raises(ValueError, match=r"dashboard=True needs aiohttp"):
        at.run(lambda config: None, storage_path=str(tmp_path), verbose=0, dashboard=True)
    assert not os.path.exists(tmp_path / "live")
