"""Framework overhead on this machine: per-trial cost, results/s, time to first result.

    python benchmarks/overhead.py            # full sizes (issue targets)
    python benchmarks/overhead.py --quick    # smaller, for a smoke run

Figures are medians over --repeats runs. results/s is measured twice: as run() runs it by
default (FIFO, no stop criterion: the trials run pipelined, a result does not wait for its
answer) and with a stop criterion that never fires, which keeps every result waiting for its
decision (the Tune paper's lock step, as ASHA's rungs or PBT's results are). Peers (Ray Tune,
Optuna) are measured in the same run when installed (`pip install "ray[tune]" optuna`); they are
never test dependencies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import asynctune
from asynctune import Callback


def one_report(config):
    asynctune.report(score=config["x"])


def many_reports(config):
    for i in range(config["n"]):
        asynctune.report(score=i)


class FirstResultLatency(Callback):
    """Time from the driver starting a trial to the driver holding its first result."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self._seen: set[str] = set()

    def on_trial_result(self, trial, result) -> None:
        if trial.trial_id not in self._seen:
            self._seen.add(trial.trial_id)
            self.latencies.append(time.time() - trial.start_time)


def per_trial_overhead(trials: int, storage: str) -> float:
    start = time.perf_counter()
    asynctune.run(one_report, config={"x": asynctune.uniform(0, 1)}, num_samples=trials,
                  max_concurrent_trials=2, storage_path=storage, verbose=0)
    return (time.perf_counter() - start) / trials


def results_per_second(results: int, storage: str, *, synchronous: bool = False) -> float:
    # A criterion that never fires: on the local executor every result then waits for its decision.
    stop = {"training_iteration": results + 1} if synchronous else None
    start = time.perf_counter()
    asynctune.run(many_reports, config={"n": results}, num_samples=2, max_concurrent_trials=2,
                  storage_path=storage, verbose=0, stop=stop)
    return 2 * results / (time.perf_counter() - start)


def first_result(trials: int, storage: str) -> tuple[float, float]:
    latency = FirstResultLatency()
    asynctune.run(one_report, config={"x": asynctune.uniform(0, 1)}, num_samples=trials,
                  max_concurrent_trials=1, storage_path=storage, verbose=0, callbacks=[latency])
    return latency.latencies[0], statistics.median(latency.latencies[1:])


_ECHO = r"""
import pickle, struct, sys
read, write = sys.stdin.buffer, sys.stdout.buffer
while header := read.read(4):
    message = pickle.loads(read.read(struct.unpack(">I", header)[0]))
    if message is None:
        break
    answer = pickle.dumps("CONTINUE")  # the decision, framed as asynctune's protocol frames it
    write.write(struct.pack(">I", len(answer)) + answer)
    write.flush()
"""


def raw_round_trip(count: int) -> float:
    """One framed, pickled message to a child process over a pipe and a framed answer back: the
    floor under any driver/worker protocol on this machine (what the store issue measures against)."""
    import pickle
    import struct
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    message = pickle.dumps(("result", {"score": 0.5, "training_iteration": 1}, None))
    frame = struct.pack(">I", len(message)) + message
    start = time.perf_counter()
    for _ in range(count):
        child.stdin.write(frame)
        child.stdin.flush()
        size = struct.unpack(">I", child.stdout.read(4))[0]
        child.stdout.read(size)
    elapsed = (time.perf_counter() - start) / count
    end = pickle.dumps(None)
    child.stdin.write(struct.pack(">I", len(end)) + end)
    child.stdin.close()
    child.wait()
    return elapsed


def ray_per_trial(trials: int) -> float | None:
    try:
        import ray
        from ray import tune
    except ImportError:
        return None
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")

    def trainable(config):
        tune.report({"score": config["x"]})

    start = time.perf_counter()
    tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=2)).fit()
    elapsed = (time.perf_counter() - start) / trials
    ray.shutdown()
    return elapsed


def optuna_per_trial(trials: int) -> float | None:
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(storage=f"sqlite:///{tmp}/o.db")
        start = time.perf_counter()
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=trials)
        return (time.perf_counter() - start) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="also measure Ray Tune and Optuna if installed")
    args = parser.parse_args()
    trials, results = (200, 2000) if args.quick else (2000, 20000)
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        per_trial = statistics.median(per_trial_overhead(trials, storage) for _ in range(args.repeats))
        trip = statistics.median(raw_round_trip(results) for _ in range(args.repeats))
        rows.append(("raw pipe round trip (framed pickle there and back, no framework)",
                     f"{trip * 1e6:.1f} µs", "the floor"))
        rows.append((f"overhead per trial ({trials} one-report trials, 2 at a time)",
                     f"{per_trial * 1e3:.2f} ms ({per_trial / trip:.0f} round trips)", "< 3 ms"))
        rate = statistics.median(results_per_second(results, storage) for _ in range(args.repeats))
        rows.append((f"results/s (2 trials x {results} results, all persisted; pipelined)",
                     f"{rate:,.0f} ({rate * trip / 2:.2f} of 2 pipes' round-trip rate)", "> 20,000"))
        rate = statistics.median(results_per_second(results, storage, synchronous=True)
                                 for _ in range(args.repeats))
        rows.append(("results/s, each waiting for its decision (a stop= criterion)",
                     f"{rate:,.0f} ({rate * trip / 2:.2f} of 2 pipes' round-trip rate)", ""))
        latencies = [first_result(20, storage) for _ in range(args.repeats)]
        cold = statistics.median(c for c, _ in latencies)
        warm = statistics.median(w for _, w in latencies)
        rows.append(("first result, warm worker", f"{warm * 1e3:.2f} ms", "< 10 ms"))
        rows.append(("first result, cold worker (process start)", f"{cold * 1e3:.1f} ms", ""))
    if args.peers:
        peer_trials = 200
        ray = ray_per_trial(peer_trials)
        if ray is not None:
            rows.append((f"Ray Tune per trial ({peer_trials} trials)", f"{ray * 1e3:.1f} ms",
                         f"{ray / per_trial:.0f}x asynctune"))
        optuna = optuna_per_trial(peer_trials)
        if optuna is not None:
            rows.append((f"Optuna per trial, in-process, SQLite ({peer_trials} trials)", f"{optuna * 1e3:.2f} ms",
                         f"{optuna / per_trial:.1f}x asynctune"))
    print_table(f"asynctune overhead (python {sys.version.split()[0]}, medians of {args.repeats})",
                ["measure", "value", "target"], rows)


def print_table(title: str, header: list[str], rows: list[tuple]) -> None:
    """A markdown table, its first column padded so it also reads well as plain text."""
    width = max(len(str(r[0])) for r in [tuple(header), *rows])
    print(title)
    print("| " + " | ".join([header[0].ljust(width), *header[1:]]) + " |")
    print(f"|{'-' * (width + 2)}|" + "---|" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join([str(row[0]).ljust(width), *map(str, row[1:])]) + " |")


if __name__ == "__main__":
    main()
