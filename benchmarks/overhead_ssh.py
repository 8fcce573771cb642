"""Framework overhead over SSH: results/s and time to first result, to an sshd on 127.0.0.1.

    python benchmarks/overhead_ssh.py            # full sizes
    python benchmarks/overhead_ssh.py --quick    # smaller, for a smoke run
    python benchmarks/overhead_ssh.py --links 0,20,100 [--quick] [--partition 20]
                                                 # behind a delay relay: ratios to local, same run

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


# Links with latency (issue 34): the same measures against an sshd behind a delay relay ------------


def per_trial_s(executor, trials: int, storage: str) -> float:
    """Steady state: the median time between consecutive trial starts, one trial at a time."""
    analysis = asynctune.run(one_report, config={"x": asynctune.uniform(0, 1)}, num_samples=trials,
                             max_concurrent_trials=1, executor=executor, storage_path=storage, verbose=0)
    starts = sorted(t.start_time for t in analysis.trials)
    return statistics.median(b - a for a, b in zip(starts, starts[1:]))


class _ResultTimes(asynctune.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_trial_result(self, trial, result) -> None:
        self.times.append(time.perf_counter())


def steady_rate(executor, trainable, config: dict, storage: str) -> float:
    """Results/s between the first result and the last of 2 trials at once (the start, which
    first result after run() measures, left out)."""
    seen = _ResultTimes()
    asynctune.run(trainable, config=config, num_samples=2, max_concurrent_trials=2, executor=executor,
                  storage_path=storage, verbose=0, callbacks=[seen])
    return (len(seen.times) - 1) / (seen.times[-1] - seen.times[0])


class _FirstResult(asynctune.Callback):
    def __init__(self) -> None:
        self.at: float | None = None

    def on_trial_result(self, trial, result) -> None:
        self.at = self.at or time.perf_counter()


def first_result_after_run_s(executor, storage: str) -> float:
    seen = _FirstResult()
    start = time.perf_counter()
    asynctune.run(one_report, config={"x": 1}, executor=executor, storage_path=storage, verbose=0, callbacks=[seen])
    return (seen.at or time.perf_counter()) - start


def partition(lab, relay_for, alias_for, cut_s: float, storage: str) -> tuple[float, float]:
    """Cut the link silently for cut_s while a trial runs there: (seconds to be declared down
    after the cut, seconds to be back after the restore)."""
    import threading

    relay, alias = relay_for(0.0), None
    alias = alias_for(relay)
    host = {"host": alias, "python": sys.executable, "workdir": os.path.join(storage, "remote"),
            "env": {"PYTHONPATH": ROOT}, "cpus": 1}
    executor = SSHExecutor([host], ssh_config=lab.ssh_config, working_dir=HERE)
    changes: list[tuple[float, bool]] = []
    executor.watch_hosts(lambda: changes.append((time.monotonic(), executor.host_available(alias))))
    times: dict[str, float] = {}

    def cut() -> None:
        time.sleep(1)
        times["cut"] = time.monotonic()
        relay.partition()
        time.sleep(cut_s)
        times["restore"] = time.monotonic()
        relay.restore()

    class CutAfterFirstResult(asynctune.Callback):
        def on_trial_result(self, trial, result) -> None:
            if not times:
                times["first"] = time.monotonic()
                threading.Thread(target=cut, daemon=True).start()

    try:
        asynctune.run(sleeper, config={"n": int(cut_s + 10)}, executor=executor, storage_path=storage, verbose=0,
                      max_failures=5, callbacks=[CutAfterFirstResult()])
    finally:
        relay.stop()
    down = next((t for t, up in changes if not up), float("nan"))
    back = next((t for t, up in changes if up and t > down), float("nan"))
    return down - times.get("cut", float("nan")), back - times.get("restore", float("nan"))


def sleeper(config):
    for i in range(config["n"]):
        time.sleep(1)
        asynctune.report(step=i)


def links_table(args) -> None:
    from tests.helpers.delay_relay import DelayRelay

    with tempfile.TemporaryDirectory() as tmp:
        lab = start_lab(os.path.join(tmp, "lab"), 1)
        server = lab.servers[0]
        with open(server.host_key + ".pub") as f:
            key_type, key = f.read().split()[:2]

        def relay_for(one_way_s: float) -> DelayRelay:
            return DelayRelay(server.port, one_way_s).start()

        def alias_for(relay: DelayRelay) -> str:
            alias = f"link{relay.port}"
            with open(lab.known_hosts, "a") as f:
                f.write(f"[127.0.0.1]:{relay.port} {key_type} {key}\n")
            with open(lab.ssh_config, "a") as f:
                f.write(f"Host {alias}\n  HostName 127.0.0.1\n  Port {relay.port}\n  User {lab.user}\n"
                        f"  IdentityFile {lab.user_key}\n  UserKnownHostsFile {lab.known_hosts}\n"
                        f"  IdentitiesOnly yes\n")
            return alias

        storage = os.path.join(tmp, "results")
        results, checkpointed, trials = (300, 60, 12) if args.quick else (2000, 200, 30)
        try:
            plain, with_checkpoints = {"n": results}, {"n": checkpointed, "bytes": 100_000}
            local = (per_trial_s(LocalExecutor(cpus=2), trials, storage),
                     steady_rate(LocalExecutor(cpus=2), many_reports, plain, storage),
                     steady_rate(LocalExecutor(cpus=2), checkpoints, with_checkpoints, storage),
                     first_result_after_run_s(LocalExecutor(cpus=2), storage))
            rows = [("local", f"{local[0] * 1e3:.1f} ms", f"{local[1]:,.0f}", f"{local[2]:,.0f}", f"{local[3]:.2f} s")]
            for rtt_ms in args.links:
                relay = relay_for(rtt_ms / 2000)
                try:
                    host = {"host": alias_for(relay), "python": sys.executable, "env": {"PYTHONPATH": ROOT},
                            "workdir": os.path.join(tmp, "remote"), "cpus": 2}

                    def fresh() -> SSHExecutor:
                        return SSHExecutor([host], ssh_config=lab.ssh_config, working_dir=HERE)

                    trial_s = per_trial_s(fresh(), trials, storage)
                    rate = steady_rate(fresh(), many_reports, plain, storage)
                    rate_ckpt = steady_rate(fresh(), checkpoints, with_checkpoints, storage)
                    first = first_result_after_run_s(fresh(), storage)
                finally:
                    relay.stop()
                rows.append((f"SSH, {rtt_ms:g} ms round trip",
                             f"{trial_s * 1e3:.1f} ms (local + {(trial_s - local[0]) * 1e3 / max(rtt_ms, 1e-9):.2f} RTT)"
                             if rtt_ms else f"{trial_s * 1e3:.1f} ms ({trial_s / local[0]:.1f}x)",
                             f"{rate:,.0f} ({rate / local[1]:.2f}x)", f"{rate_ckpt:,.0f} ({rate_ckpt / local[2]:.2f}x)",
                             f"{first:.2f} s"))
            print_table(f"asynctune over SSH with link latency (a user-space delay relay on 127.0.0.1; python "
                        f"{sys.version.split()[0]}; {os.cpu_count()} CPUs)",
                        ["link to the host", "per trial", "results/s (vs local)",
                         "results/s, 100 kB checkpoint each (vs local)", "first result after run()"], rows)
            if args.partition:
                down, back = partition(lab, relay_for, alias_for, args.partition, storage)
                print(f"\nsilent partition of {args.partition:g} s: declared down {down:.1f} s after the cut, "
                      f"back {back:.1f} s after the restore")
        finally:
            lab.stop()


if __name__ == "__main__":
    if "--links" in sys.argv:
        parser = argparse.ArgumentParser(description="SSH with link latency (issue 34)")
        parser.add_argument("--links", type=lambda text: [float(x) for x in text.split(",")], default=[0, 20, 100],
                            help="round trips in ms, comma-separated (0: the relay alone)")
        parser.add_argument("--quick", action="store_true")
        parser.add_argument("--partition", type=float, default=0.0, help="also cut a link silently for this long (s)")
        links_table(parser.parse_args())
    else:
        main()
