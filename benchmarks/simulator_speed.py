"""Wall time per simulated result and driver memory per trial of a simulated run (issue 21).

    python benchmarks/simulator_speed.py                 # ASHA, 64 virtual workers, 1,000 trials, 5 runs
    python benchmarks/simulator_speed.py --trials 3000 --memory 1000,10000 --recording files

Prints the median wall and CPU µs per simulated result (of --repeats runs) of `asynctune.run` on `SimulatedExecutor`
(random search + ASHA (stopping), the recorded `mlp_digits` table, run() defaults otherwise,
after a warm-up run) and, with --memory A,B, the driver's memory per trial: tracemalloc's
traced memory as the experiment ends, (B trials - A trials) / (B - A).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's asynctune, when run as a script

import asynctune  # noqa: E402
from asynctune import Callback  # noqa: E402
from asynctune.algorithms.schedulers.asha import ASHAScheduler  # noqa: E402
from asynctune.executors.simulated import SimulatedExecutor, Workload, replay  # noqa: E402
from asynctune.store.recording import RECORDINGS  # noqa: E402

WORKLOAD = os.path.join(HERE, "workloads", "mlp_digits.json.gz")


class _MemoryAtEnd(Callback):
    def on_experiment_end(self, trials) -> None:
        gc.collect()
        self.traced = tracemalloc.get_traced_memory()[0]


def simulate(trials: int, workers: int, recording: str | None, storage: str, callbacks=()) -> tuple[int, float, float]:
    workload = Workload.load(WORKLOAD)
    kwargs = {} if recording is None else {"recording": recording}  # None: the executor's default
    executor = SimulatedExecutor(workload, n_workers=workers, seed=0, **kwargs)
    wall, cpu = time.perf_counter(), time.process_time()
    asynctune.run(replay, config=workload.space(), num_samples=trials, metric=workload.metric, mode=workload.mode,
                  scheduler=ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3, seed=0), executor=executor,
                  storage_path=storage, name=f"speed-{trials}-{time.time_ns()}", seed=0, verbose=0,
                  callbacks=list(callbacks))
    return executor.results_replayed, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--recording", choices=RECORDINGS, help="default: the executor's")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (the median is printed)")
    parser.add_argument("--memory", help="A,B: driver memory per trial between A and B trials")
    parser.add_argument("--storage", default=tempfile.gettempdir(), help="where the experiment directories go")
    args = parser.parse_args()
    storage = tempfile.mkdtemp(prefix="asynctune-speed-", dir=args.storage)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    simulate(50, args.workers, args.recording, storage)  # imports, caches
    runs = [simulate(args.trials, args.workers, args.recording, storage) for _ in range(args.repeats)]
    results = runs[0][0]
    walls = sorted(1e6 * wall / n for n, wall, _ in runs)
    cpus = sorted(1e6 * cpu / n for n, _, cpu in runs)
    print(f"ASHA, {args.workers} virtual workers, {args.trials} trials, {results} results, "
          f"recording={args.recording or 'default'}: per simulated result {statistics.median(walls):.0f} µs wall "
          f"(median of {len(runs)}; {walls[0]:.0f}-{walls[-1]:.0f}), {statistics.median(cpus):.0f} µs CPU "
          f"(load average {load:.1f})")
    if args.memory:
        small, large = (int(n) for n in args.memory.split(","))
        tracemalloc.start()
        traced = []
        for trials in (small, large):
            probe = _MemoryAtEnd()
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
            simulate(trials, args.workers, args.recording, storage, [probe])
            traced.append(probe.traced - base)
        tracemalloc.stop()
        print(f"driver memory as the experiment ends: {traced[0] / 1e6:.1f} MB at {small} trials, "
              f"{traced[1] / 1e6:.1f} MB at {large}: {(traced[1] - traced[0]) / (large - small) / 1e3:.2f} KB per trial")


if __name__ == "__main__":
    main()
