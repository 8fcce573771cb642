"""Framework overhead over SSH: results/s and time to first result, to an sshd on 127.0.0.1.

    python benchmarks/overhead_ssh.py            # full sizes
    python benchmarks/overhead_ssh.py --quick    # smaller, for a smoke run

Starts its own sshd (as tests/sshd.py does: generated host and user keys, an ephemeral port on
127.0.0.1), so it needs openssh-server. The local executor is measured in the same run, with
the same trainables (those of overhead.py; this folder is the hosts' working_dir), for
comparison. Loopback has no network latency: on a LAN add about one round trip per result
(the trial waits for the decision on each result) and per trial start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import asynctune
from asynctune import LocalExecutor
from asynctune.executors.ssh.executor import SSHExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))  # the checkout: tests.helpers
from overhead import FirstResultLatency, many_reports, one_report, print_table  # noqa: E402
from tests.helpers.sshd import sshd_missing, start_lab  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(asynctune.__file__)))


def checkpoints(config):
    for i in range(config["n"]):
        asynctune.report(score=i, checkpoint={"step": i, "weights": b"\0" * config["bytes"]})


def results_per_second(executor, results: int, storage: str) -> float:
    start = time.perf_counter()
    asynctune.run(many_reports, config={"n": results}, num_samples=2, max_concurrent_trials=2, executor=executor,
                  storage_path=storage, verbose=0)
    return 2 * results / (time.perf_counter() - start)


def checkpointed_results_per_second(executor, results: int, size: int, storage: str) -> float:
    start = time.perf_counter()
    asynctune.run(checkpoints, config={"n": results, "bytes": size}, num_samples=2, max_concurrent_trials=2,
                  executor=executor, storage_path=storage, verbose=0)
    return 2 * results / (time.perf_counter() - start)


def first_result(executor, trials: int, storage: str) -> tuple[float, float]:
    latency = FirstResultLatency()
    asynctune.run(one_report, config={"x": asynctune.uniform(0, 1)}, num_samples=trials, max_concurrent_trials=1,
                  executor=executor, storage_path=storage, verbose=0, callbacks=[latency])
    return latency.latencies[0], statistics.median(latency.latencies[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if sshd_missing():
        sys.exit(f"cannot benchmark over SSH: {sshd_missing()}")
    results, checkpointed = (1000, 100) if args.quick else (10000, 500)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lab = start_lab(os.path.join(tmp, "lab"), 1)
        try:
            host = {"host": "host0", "python": sys.executable, "workdir": os.path.join(tmp, "remote"),
                    "env": {"PYTHONPATH": ROOT}, "cpus": 2}

            factories = {"local": lambda: LocalExecutor(cpus=2),
                         "ssh": lambda: SSHExecutor([host], ssh_config=lab.ssh_config, working_dir=HERE)}
            storage = os.path.join(tmp, "results")
            for name, fresh in factories.items():
                rate = statistics.median(results_per_second(fresh(), results, storage) for _ in range(args.repeats))
                rows.append((f"{name}: results/s (2 trials x {results} results)", f"{rate:,.0f}"))
                rate = statistics.median(checkpointed_results_per_second(fresh(), checkpointed, 100_000, storage)
                                         for _ in range(args.repeats))
                rows.append((f"{name}: results/s, each with a 100 kB checkpoint" + (" copied to the driver" if name == "ssh" else ""), f"{rate:,.0f}"))
                latencies = [first_result(fresh(), 10, storage) for _ in range(args.repeats)]
                rows.append((f"{name}: first result, cold worker (process start)",
                             f"{statistics.median(c for c, _ in latencies) * 1e3:.1f} ms"))
                rows.append((f"{name}: first result, warm worker",
                             f"{statistics.median(w for _, w in latencies) * 1e3:.2f} ms"))
        finally:
            lab.stop()
    print_table(f"asynctune overhead over SSH to 127.0.0.1 (python {sys.version.split()[0]}, medians of {args.repeats})", ["measure", "value"], rows)


if __name__ == "__main__":
    main()
