"""The dashboard's page in a real headless Chromium: the trial table and charts of finished runs,
a Pareto front, and a run that starts after the page opened."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp", reason="the dashboard needs aiohttp: pip install 'asynctune[dashboard]'")

import asynctune as at  # noqa: E402
from asynctune.analysis.experiment import ExperimentAnalysis  # noqa: E402
from asynctune.dashboard import start_beside  # noqa: E402
from asynctune.reporting.decisions import read_decisions  # noqa: E402
from tests.helpers.dashboard_runs import two_experiments  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return two_experiments(str(tmp_path_factory.mktemp("dashboard") / "results"))


def _chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (pip install selenium)")
    paths = _chromium_paths()
    if paths is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (.ci/run does)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    options.binary_location = paths[0]
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(paths[1]))
    try:
        yield driver
    finally:
        driver.quit()


_DRAWN_PIXELS = """
const canvas = document.querySelector(arguments[0]);
if (!canvas || !canvas.width || !canvas.height) return 0;
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let drawn = 0;
for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
return drawn;
"""


def test_the_page_shows_the_trials_and_draws_the_charts_in_chromium(root, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    trial_ids = {t.trial_id for t in ExperimentAnalysis(os.path.join(root, "asha")).trials}
    url, stop = start_beside(root)
    try:
        started = time.perf_counter()
        browser.get(url + "#/asha")
        WebDriverWait(browser, 30).until(lambda d: set(d.execute_script(
            "return [...document.querySelectorAll('#trials tbody tr')].map(e => e.dataset.trial)")) == trial_ids)
        loaded_s = time.perf_counter() - started
        dom_ms = browser.execute_script("return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
        print(f"\npage: DOM ready {dom_ms:.0f} ms, full trial table {loaded_s * 1000:.0f} ms after navigation")
        table = browser.execute_script("return document.getElementById('trials').innerText")
        assert all(trial_id in table for trial_id in trial_ids) and "FINISHED" in table and "EARLY_STOPPED" in table and "STOP @" in table
        for chart in ("#curves canvas", "#best canvas", "#parcoords"):
            size = browser.execute_script("const c = document.querySelector(arguments[0]); return [c.width, c.height];", chart)
            assert min(size) > 100, f"{chart} has size {size}"
            assert browser.execute_script(_DRAWN_PIXELS, chart) > 500, f"nothing drawn on {chart}"
        assert browser.execute_script("return state.decisions.length") == len(read_decisions(os.path.join(root, "asha")))

        for index in range(2):  # found again each time: a new listing redraws the list
            browser.find_elements(By.CSS_SELECTOR, "#experiments input[type=checkbox]")[index].click()
        WebDriverWait(browser, 15).until(lambda d: d.execute_script(_DRAWN_PIXELS, "#compare canvas") > 500)
        legend = browser.execute_script("return document.getElementById('compare').innerText")
        assert "asha" in legend and "fifo" in legend
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        stop()


def two_metrics(config):
    at.report(error=config["x"], latency=(1 - config["x"]) ** 2 + config["y"])


def test_the_page_draws_the_pareto_front_of_a_run_with_two_metrics_in_chromium(tmp_path, browser):
    storage = str(tmp_path / "results")
    analysis = at.run(two_metrics, config={"x": at.uniform(0, 1), "y": at.uniform(0, 1)}, num_samples=40, seed=0,
                      metric=["error", "latency"], mode="min", storage_path=storage, name="mo", verbose=0)
    url, stop = start_beside(storage)
    try:
        browser.get(url + "#/mo")
        WebDriverWait = pytest.importorskip("selenium.webdriver.support.ui").WebDriverWait
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(_DRAWN_PIXELS, "#pareto") > 500)
        red = browser.execute_script("""
            const c = document.querySelector('#pareto'), data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i] > 180 && data[i + 1] < 110 && data[i + 2] < 110) n++;
            return n;""")
        assert red > 100  # the front's points and the line joining them
        summary = browser.execute_script("return document.getElementById('summary').innerText")
        assert f"pareto front\n{len(analysis.pareto_front())} non-dominated trials" in summary.lower(), summary
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        stop()


_LIVE_DRIVER = """
import sys, time
import asynctune as at

def train(config):
    for step in range(1, 9):
        time.sleep(0.3)
        at.report(loss=config["x"] / step)

at.run(train, config={"x": at.grid_search([1, 2, 3, 4])}, metric="loss", mode="min", storage_path=sys.argv[1],
       name="live", verbose=0, max_concurrent_trials=2)
"""


def test_the_page_follows_a_run_that_starts_after_it_opened(root, tmp_path, browser):
    """The page is opened on an experiment that does not exist yet (showing another meanwhile); a
    driver process then runs it. Polling shows it appear, trials running, then all finished."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    storage = str(tmp_path / "results")
    shutil.copytree(os.path.join(root, "fifo"), os.path.join(storage, "fifo"))
    url, stop = start_beside(storage, experiment="live")
    driver = None
    try:
        browser.get(url)
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return document.querySelector('#summary .title')?.textContent") == "fifo")
        driver = subprocess.Popen([sys.executable, "-c", _LIVE_DRIVER, storage], cwd=os.getcwd())
        # Read in one script: the page replaces the table while it polls, so elements go stale.
        statuses = lambda d: d.execute_script(  # noqa: E731
            "return [...document.querySelectorAll('#trials tbody .status')].map(e => e.textContent)")
        WebDriverWait(browser, 60, poll_frequency=0.1).until(lambda d: "RUNNING" in statuses(d))
        assert browser.execute_script("return document.querySelector('#summary .title').textContent") == "live"
        WebDriverWait(browser, 60).until(lambda d: statuses(d) == ["FINISHED"] * 4)
        assert driver.wait(timeout=60) == 0
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return state.curveIds && state.curveIds.length") == 4
            and d.execute_script(_DRAWN_PIXELS, "#curves canvas") > 500)
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        stop()
