"""Make docs/img/dashboard.png: two real experiments on scikit-learn's digits, served by the
dashboard and photographed in Debian's headless Chromium (apt-get install chromium chromium-driver).

    python scripts/dashboard_screenshot.py [--out docs/img/dashboard.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import asynctune as at  # noqa: E402
from asynctune.dashboard import start_beside  # noqa: E402
from tune_digits import SPACE, train_mlp  # noqa: E402


def run_experiments(storage: str) -> None:
    space = dict(SPACE, epochs=27)
    at.run(train_mlp, config=space, num_samples=12, metric="accuracy", mode="max", storage_path=storage,
           name="digits_random", seed=1, verbose=0)
    at.run(train_mlp, config=space, num_samples=40, metric="accuracy", mode="max", storage_path=storage,
           scheduler=at.ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3), name="digits_asha",
           seed=0, verbose=0)


def photograph(url: str, out: str, width: int, height: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
    try:
        driver.get(url + "#/digits_asha")
        time.sleep(2)
        for checkbox in driver.find_elements(By.CSS_SELECTOR, "#experiments input[type=checkbox]"):
            checkbox.click()
        time.sleep(3)
        driver.save_screenshot(out)
    finally:
        driver.quit()
    try:  # 256 colours keep the PNG small enough for the README
        from PIL import Image
    except ImportError:
        return
    Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("docs", "img", "dashboard.png"))
    parser.add_argument("--size", default="1440x1350", help="window WIDTHxHEIGHT")
    parser.add_argument("--storage", help="keep the experiments here (and reuse them if they are there)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        storage = args.storage or scratch
        if not os.path.isdir(os.path.join(storage, "digits_asha")):
            run_experiments(storage)
        url, stop = start_beside(storage)
        try:
            photograph(url, args.out, width, height)
        finally:
            stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
