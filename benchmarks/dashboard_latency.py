"""How fast the dashboard's API answers for a large experiment, as the page polls it every 2 s.

Runs a real experiment of `--trials` trials (a function trainable that reports `--results`
times), serves it, and times each endpoint over HTTP: the first call (nothing cached) and the
median of `--repeats` later calls (files unchanged: only their sizes are checked), then the
median after one more result is appended to every trial (what a live run costs per poll).

    python benchmarks/dashboard_latency.py                 # 200 trials x 20 results
    python benchmarks/dashboard_latency.py --trials 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

import asynctune
from asynctune.dashboard import start_beside

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import print_table  # noqa: E402


def curve(config):
    for step in range(1, config["results"] + 1):
        asynctune.report(loss=config["x"] / step, accuracy=1 - config["x"] / (step + 1))


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--results", type=int, default=20, help="results per trial")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as storage:
        built = time.perf_counter()
        asynctune.run(curve, config={"x": asynctune.uniform(0, 1), "results": args.results}, num_samples=args.trials,
                      metric="loss", mode="min", storage_path=storage, name="big", verbose=0, seed=0)
        print(f"experiment of {args.trials} trials x {args.results} results run in {time.perf_counter() - built:.1f} s")
        url, stop = start_beside(storage)
        try:
            api = url + "api/experiments"
            endpoints = {"experiments": api, "trials": api + "/big/trials", "curves": api + "/big/curves",
                         "results of one trial": api + "/big/trials/trial_00000/results"}
            rows = []
            for label, endpoint in endpoints.items():
                first, size = timed_get(endpoint)
                warm = statistics.median(timed_get(endpoint)[0] for _ in range(args.repeats))
                rows.append([label, f"{first * 1e3:.1f}", f"{warm * 1e3:.1f}", f"{size / 1024:.0f} KiB"])
            appended = []
            for _ in range(5):  # a live run: every trial has one new result since the last poll
                for index in range(args.trials):
                    with open(os.path.join(storage, "big", f"trial_{index:05d}", "result.jsonl"), "a") as f:
                        f.write(json.dumps({"loss": 0.5, "training_iteration": 999, "timestamp": time.time()}) + "\n")
                appended.append(timed_get(endpoints["curves"])[0])
            rows.append(["curves, every trial one result newer", "", f"{statistics.median(appended) * 1e3:.1f}", ""])
        finally:
            stop()
    print_table(f"dashboard API, {args.trials} trials x {args.results} results (python {sys.version.split()[0]}, "
                f"median of {args.repeats})", ["endpoint", "first call ms", "later calls ms", "answer"], rows)


if __name__ == "__main__":
    main()
