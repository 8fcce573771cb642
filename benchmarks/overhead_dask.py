"""Framework overhead through Dask, both channels, against the local executor, in one run.

    python benchmarks/overhead_dask.py            # full sizes
    python benchmarks/overhead_dask.py --quick    # smaller, for a smoke run

Three executors, measured the same way, repetitions interleaved (so a change of load on a
shared machine hits all three alike): a DaskExecutor's LocalCluster (one single-threaded
worker process per --workers, TLS) on the direct channel, the same on the queue channel
(`channel="queue"`, what every trial used before the direct channel), and the LocalExecutor
with as many CPUs. Each figure is taken from the driver's clock between results (a Callback),
so cluster and worker start-up are excluded, and is the median over --repeats runs:

- overhead per trial: one-report trials, --workers at a time; the time between the
  --workers-th result and the last, per trial after the first --workers.
- results/s: --workers trials reporting at once, each result decided; results after the first
  of each trial, over the time from the first result to the last.

Ray Tune is measured in the same run where it is installed (`ray[tune]`); never a dependency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import asynctune
from asynctune import Callback
from asynctune.executors.dask.executor import DaskExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import print_table  # noqa: E402

KINDS = ("dask direct", "dask queue", "local")


def one_report(config):
    asynctune.report(score=config["x"])


def many_reports(config):
    for i in range(config["n"]):
        asynctune.report(score=i)


class ResultClock(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_trial_result(self, trial, result) -> None:
        self.times.append(time.perf_counter())


def _executor(kind: str, workers: int):
    if kind == "local":
        return asynctune.LocalExecutor(cpus=workers)
    return DaskExecutor(n_workers=workers, channel=kind.split()[1])


def per_trial_overhead(kind: str, trials: int, workers: int, storage: str) -> float:
    clock = ResultClock()
    asynctune.run(one_report, config={"x": asynctune.uniform(0, 1)}, num_samples=trials + workers,
                  max_concurrent_trials=workers, storage_path=storage, executor=_executor(kind, workers),
                  verbose=0, callbacks=[clock])
    return (clock.times[-1] - clock.times[workers - 1]) / trials


def results_per_second(kind: str, results: int, workers: int, storage: str) -> float:
    clock = ResultClock()
    asynctune.run(many_reports, config={"n": results}, num_samples=workers, max_concurrent_trials=workers,
                  storage_path=storage, executor=_executor(kind, workers), verbose=0, callbacks=[clock])
    return (len(clock.times) - workers) / (clock.times[-1] - clock.times[workers - 1])


def ray_per_trial(trials: int, workers: int) -> float | None:
    try:
        import ray
        from ray import tune
    except ImportError:
        return None
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR")

    def trainable(config):
        tune.report({"score": config["x"]})

    start = time.perf_counter()
    tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=workers)).fit()
    elapsed = (time.perf_counter() - start) / trials
    ray.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    trials, results = (100, 1000) if args.quick else (400, 4000)
    per_trial: dict[str, list[float]] = {kind: [] for kind in KINDS}
    rate: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as storage:
        for _ in range(args.repeats):
            for kind in KINDS:
                per_trial[kind].append(per_trial_overhead(kind, trials, args.workers, storage))
                rate[kind].append(results_per_second(kind, results, args.workers, storage))
    trial_ms = {kind: statistics.median(values) * 1e3 for kind, values in per_trial.items()}
    per_s = {kind: statistics.median(values) for kind, values in rate.items()}
    rows = []
    for kind in KINDS:
        rows.append((f"{kind}: overhead per trial ({trials} one-report trials, {args.workers} at a time)",
                     f"{trial_ms[kind]:.2f} ms", f"{trial_ms[kind] / trial_ms['local']:.1f}x local"))
    for kind in KINDS:
        rows.append((f"{kind}: results/s ({args.workers} trials x {results} results, each decided)",
                     f"{per_s[kind]:,.0f}", f"{per_s[kind] / per_s['local']:.2f} of local"))
    ray = ray_per_trial(trials, args.workers)
    rows.append(("Ray Tune: per trial", "not installed" if ray is None else f"{ray * 1e3:.1f} ms",
                 "" if ray is None else f"{ray * 1e3 / trial_ms['local']:.0f}x local"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_table(f"asynctune through Dask (python {sys.version.split()[0]}, medians of {args.repeats}, "
                f"load average {load:.1f})", ["measure", "value", "ratio"], rows)


if __name__ == "__main__":
    main()
