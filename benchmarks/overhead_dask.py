"""Framework overhead through Dask: per-trial cost, results/s, and one result's round trip.

    python benchmarks/overhead_dask.py            # full sizes
    python benchmarks/overhead_dask.py --quick    # smaller, for a smoke run

Runs on a DaskExecutor's LocalCluster (one single-threaded worker process per --workers) and,
for comparison, on the LocalExecutor with as many CPUs. The round-trip rows time the bare Dask
mechanisms a trial's report() could ride on (no asynctune code): a pair of distributed.Queues
(what DaskExecutor uses) and an Actor method call. (Pub/Sub is gone from recent distributed.)
Figures are medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time

import os

import asynctune
from asynctune.executors.dask import DaskExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import print_table  # noqa: E402


def one_report(config):
    asynctune.report(score=config["x"])


def many_reports(config):
    for i in range(config["n"]):
        asynctune.report(score=i)


def _executor(kind: str, workers: int):
    return DaskExecutor(n_workers=workers) if kind == "dask" else asynctune.LocalExecutor(cpus=workers)


def per_trial_overhead(kind: str, trials: int, workers: int, storage: str) -> float:
    """Seconds per one-report trial, cluster start excluded (the first trial pays it; a warm-up
    experiment of `workers` trials is subtracted)."""
    def timed(n: int) -> float:
        start = time.perf_counter()
        asynctune.run(one_report, config={"x": asynctune.uniform(0, 1)}, num_samples=n, storage_path=storage,
                      executor=_executor(kind, workers), verbose=0)
        return time.perf_counter() - start

    fixed = timed(workers)
    return max(0.0, timed(trials + workers) - fixed) / trials


def results_per_second(kind: str, results: int, workers: int, storage: str) -> float:
    """Results per second over `workers` trials reporting at once, cluster start excluded (an
    experiment of one-result trials is subtracted)."""
    def timed(n: int) -> float:
        start = time.perf_counter()
        asynctune.run(many_reports, config={"n": n}, num_samples=workers, storage_path=storage,
                      executor=_executor(kind, workers), verbose=0)
        return time.perf_counter() - start

    fixed = timed(1)
    return workers * (results - 1) / max(1e-9, timed(results) - fixed)


# --- bare Dask mechanisms, for the choice of channel -------------------------------------------

def _queue_echo(out_name: str, in_name: str, n: int) -> None:
    from distributed import Queue

    out, inbox = Queue(out_name), Queue(in_name)
    for i in range(n):
        out.put(i)
        inbox.get()


class _Echo:
    def ping(self, i: int) -> int:
        return i


async def round_trips(n: int) -> dict[str, float]:
    import distributed

    seconds: dict[str, float] = {}
    async with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                        dashboard_address=None, asynchronous=True) as cluster, \
            distributed.Client(cluster, asynchronous=True) as client:
        out, inbox = await distributed.Queue("bench-out", client=client), await distributed.Queue("bench-in", client=client)
        future = client.submit(_queue_echo, out.name, inbox.name, n + 10, pure=False)
        for _ in range(10):
            await out.get()
            await inbox.put("go")
        start = time.perf_counter()
        for _ in range(n):
            await out.get()
            await inbox.put("CONTINUE")
        seconds["Queue pair (DaskExecutor's choice)"] = (time.perf_counter() - start) / n
        await future

        actor = await client.submit(_Echo, actor=True)
        for i in range(10):
            await actor.ping(i)
        start = time.perf_counter()
        for i in range(n):
            await actor.ping(i)
        seconds["Actor method call (driver -> worker -> driver)"] = (time.perf_counter() - start) / n

    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    trials, results, pings = (50, 500, 200) if args.quick else (200, 2000, 1000)
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for kind in ("dask", "local"):
            per_trial = statistics.median(per_trial_overhead(kind, trials, args.workers, storage)
                                          for _ in range(args.repeats))
            rows.append((f"{kind}: overhead per trial ({trials} one-report trials, {args.workers} at a time)",
                         f"{per_trial * 1e3:.2f} ms"))
            rate = statistics.median(results_per_second(kind, results, args.workers, storage)
                                     for _ in range(args.repeats))
            rows.append((f"{kind}: results/s ({args.workers} trials x {results} results, each decided)",
                         f"{rate:,.0f}"))
    for name, seconds in asyncio.run(round_trips(pings)).items():
        rows.append((f"round trip, bare Dask: {name}", f"{seconds * 1e3:.2f} ms"))
    print_table(f"asynctune through Dask (python {sys.version.split()[0]}, medians of {args.repeats})", ["measure", "value"], rows)


if __name__ == "__main__":
    main()
