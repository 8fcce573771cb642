"""No symlink out, no id as a path (issue 27, case 6): the readers of an experiment directory
(analysis, `asynctune show/plot`, the dashboard) refuse links that leave the experiment, use
names read from files as paths only when they are plain names, and the dashboard's page escapes
every string it inserts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import asynctune as at

SECRET = "do-not-serve-me"


def descend(config):
    for step in range(1, 4):
        at.report(loss=config["x"] / step)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished experiment (ASHA: decisions.jsonl has lines) to copy and damage per test."""
    storage = str(tmp_path_factory.mktemp("made"))
    at.run(descend, config={"x": at.grid_search([1, 2, 3])}, metric="loss", mode="min", storage_path=storage,
           name="exp", scheduler=at.ASHAScheduler(max_t=3, grace_period=1, reduction_factor=2), verbose=0,
           tensorboard=False)
    return os.path.join(storage, "exp")


def _secret_results(directory) -> str:
    """A directory outside the served one, holding a result.jsonl and an experiment.json of its own."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "result.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps({"loss": 0.5, "training_iteration": 1, "trial_id": SECRET}) + "\n")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asynctune.cli", *args], capture_output=True, text=True, timeout=300)


def _serve_get(root: str, paths: list[str]) -> dict[str, tuple[int, str]]:
    pytest.importorskip("aiohttp")
    import aiohttp

    from asynctune.dashboard import serve

    async def fetch() -> dict[str, tuple[int, str]]:
        answers = {}
        async with serve(root) as url, aiohttp.ClientSession() as session:
            for path in paths:
                async with session.get(url.rstrip("/") + path) as response:
                    answers[path] = (response.status, await response.text())
        return answers

    return asyncio.run(fetch())


@pytest.mark.parametrize("link", ["experiment.json", "trial directory", "result.jsonl", "decisions.jsonl"])
def test_links_out_of_the_experiment_are_refused_by_every_reader(made, tmp_path, link):
    served = tmp_path / "served"
    shutil.copytree(made, served / "exp")
    exp = served / "exp"
    outside = tmp_path / "outside"
    secret = _secret_results(outside / "trial_00000")
    if link == "experiment.json":
        shutil.copy(exp / "experiment.json", outside / "experiment.json")
        text = (outside / "experiment.json").read_text().replace('"name": "exp"', f'"name": "{SECRET}"')
        (outside / "experiment.json").write_text(text)
        os.replace(exp / "experiment.json", tmp_path / "moved-away.json")
        os.symlink(outside / "experiment.json", exp / "experiment.json")
    elif link == "trial directory":
        shutil.rmtree(exp / "trial_00000")
        os.symlink(outside / "trial_00000", exp / "trial_00000")
    elif link == "result.jsonl":
        os.unlink(exp / "trial_00000" / "result.jsonl")
        os.symlink(secret, exp / "trial_00000" / "result.jsonl")
    else:
        with open(outside / "decisions.jsonl", "w") as f:
            f.write(json.dumps({"trial_id": "trial_00000", "decision": "STOP", "detail": SECRET, "iteration": 1}) + "\n")
        os.unlink(exp / "decisions.jsonl")
        os.symlink(outside / "decisions.jsonl", exp / "decisions.jsonl")

    answers = _serve_get(str(served), ["/api/experiments", "/api/experiments/exp/trials",
                                       "/api/experiments/exp/trials/trial_00000/results",
                                       "/api/experiments/exp/curves"])
    for path, (status, body) in answers.items():
        assert SECRET not in body, f"the dashboard served {link} through a link out: {path} -> {status} {body}"

    for command in (["show", "--json"], ["plot", "-o", str(tmp_path / "plots")]):
        done = _cli(*command, str(exp))
        assert SECRET not in done.stdout + done.stderr
        if done.returncode != 0 or command[0] == "plot":  # plot reads every file: it refuses the link
            assert done.returncode != 0 and "outside" in done.stderr and "symbolic link" in done.stderr, done.stderr
    with pytest.raises(ValueError, match="outside"):
        analysis = at.ExperimentAnalysis(str(exp))
        analysis.decisions()
        [analysis.trial_results(t.trial_id) for t in analysis.trials]


def test_resume_neither_reads_nor_rewinds_through_a_link_out(made, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(made, exp)
    state = json.loads((exp / "experiment.json").read_text())
    (exp / "experiment.json").write_text(json.dumps({**state, "status": "INTERRUPTED"}))
    outside = _secret_results(tmp_path / "outside")
    before = open(outside).read()
    os.unlink(exp / "trial_00001" / "result.jsonl")
    os.symlink(outside, exp / "trial_00001" / "result.jsonl")
    with pytest.raises(ValueError, match=r"trial_00001/result.jsonl: it leads to .*outside"):
        at.resume(str(exp), verbose=0)
    assert open(outside).read() == before


def test_a_trial_id_read_from_a_file_is_never_a_path(made, tmp_path):
    exp = tmp_path / "a" / "b" / "exp"
    shutil.copytree(made, exp)
    path = exp / "experiment.json"
    state = json.loads(path.read_text())
    state["trials"][0]["trial_id"] = "../../x"
    path.write_text(json.dumps(state))

    done = _cli("plot", str(exp), "--per-trial", "-o", str(exp / "plots"))
    written = [os.path.join(root, name) for root, _, files in os.walk(tmp_path) for name in files
               if name.endswith(".png")]
    assert not [p for p in written if not p.startswith(str(exp / "plots"))], written
    assert done.returncode != 0 and "trial_id '../../x' is not a plain name" in done.stderr, done.stderr
    with pytest.raises(ValueError, match=r"experiment.json: trial_id '../../x' is not a plain name"):
        at.ExperimentAnalysis(str(exp))


def test_the_page_inserts_strings_from_files_as_text(made, tmp_path):
    """decisions.jsonl's iteration (and detail) were inserted as HTML: a <meta refresh> redirected."""
    from tests.e2e.test_dashboard_browser import _chromium_paths

    if _chromium_paths() is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from asynctune.dashboard import start_beside

    served = tmp_path / "served"
    shutil.copytree(made, served / "exp")
    planted = '<meta http-equiv="refresh" content="0;url=about:blank"><img src=x id=planted>'
    with open(served / "exp" / "decisions.jsonl", "a") as f:
        f.write(json.dumps({"trial_id": "trial_00000", "decision": "PAUSE", "detail": planted,
                            "iteration": planted, "time": time.time()}) + "\n")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.binary_location = _chromium_paths()[0]
    driver = webdriver.Chrome(options=options, service=Service(_chromium_paths()[1]))
    url, stop = start_beside(str(served))
    try:
        driver.get(url + "#/exp")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return document.querySelectorAll('#trials tbody tr').length") == 3)
        time.sleep(1.0)  # a refresh, had it been inserted, would have left the page by now
        assert driver.current_url.startswith(url), driver.current_url
        assert driver.execute_script("return document.querySelectorAll('#trials meta, #planted').length") == 0
        assert "<meta http-equiv" in driver.execute_script("return document.getElementById('trials').innerText")
    finally:
        stop()
        driver.quit()
