"""Soak test of the worker faults of issue 29 (not part of the default test run): trials that
kill their own worker while children hold its descriptors, write corrupt frames on the
protocol's descriptor or garbage on every descriptor, change their worker's process state, and
ignore the stop they are given; then check that every run returned with every result exactly once.

    PYTHONPATH=. python benchmarks/soak_workers.py                 # 3 runs of 40 trials
    PYTHONPATH=. python benchmarks/soak_workers.py --runs 1 --trials 20 --seed 7

Each trial reports steps 1..STEPS with a checkpoint each, and after each result draws a fault
(seeded by the run, the trial and the step it restarted from):

    kill         start children that keep every descriptor they can (one in a session of its
                 own), then SIGKILL its own worker, as the OOM killer would
    corrupt      write a frame that does not unpickle on the protocol's descriptor
    oversized    write a 4 GiB frame length on the protocol's descriptor
    descriptors  write garbage on every descriptor 0..63
    dirty        lower RLIMIT_NOFILE, set an environment variable and the umask (the next trial
                 on that worker would inherit them; the worker must be retired instead)

and one trial in `--stubborn-every` ignores SIGTERM and blocks in `finally:` once a stopper
stops it at step 2. Invariants: run() returns within its bound; every trial ends TERMINATED;
result.jsonl holds each step exactly once, in order (1..STEPS, or 1..2 for a stubborn trial);
every trial saw its worker clean (no inherited limit, variable or umask); no process a trial
started is alive; each fault reached the driver as an event (the trial's next journal line).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import psutil

import asynctune as at

STEPS = 4
FAULTS = ("kill", "corrupt", "oversized", "descriptors", "dirty")
_LEFT = "ASYNCTUNE_SOAK_LEFT"


def faulty(config):
    import resource

    checkpoint = at.get_checkpoint()
    start = checkpoint["i"] if checkpoint else 0
    clean = (_LEFT not in os.environ and os.umask(0o077) == 0o077
             and resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 1024)
    rng = random.Random(f"{config['seed']}-{start}")
    if config["stubborn"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        for i in range(start, STEPS):
            at.report(i=i + 1, clean=clean, stubborn=config["stubborn"], checkpoint={"i": i + 1})
            if rng.random() < config["fault_p"]:
                _inject(rng.choice(FAULTS), config)
    finally:
        if config["stubborn"]:
            _note(config, "stubborn")
            time.sleep(1000)


def _note(config, kind):
    with open(os.path.join(at.get_trial_dir(), "faults.jsonl"), "a") as f:
        f.write(json.dumps({"kind": kind, "time": time.time()}) + "\n")


def _inject(kind, config):
    from asynctune.worker import session

    _note(config, kind)
    if kind == "kill":
        children = [subprocess.Popen(["sleep", "1000"], close_fds=False),
                    subprocess.Popen(["sleep", "1000"], close_fds=False, start_new_session=True)]
        with open(os.path.join(config["pids"], f"{os.getpid()}.pids"), "w") as f:
            f.write(" ".join(str(c.pid) for c in children))
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "corrupt":
        os.write(session._current.channel.write_fd, b"\x00\x00\x00\x10" + b"not a pickle at all")
    elif kind == "oversized":
        os.write(session._current.channel.write_fd, b"\xff\xff\xff\xff" + b"x" * 64)
    elif kind == "descriptors":
        for fd in range(64):
            try:
                os.write(fd, b"\x00\x00\x00\x08garbage!" * 4)
            except OSError:
                pass
    elif kind == "dirty":
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        os.environ[_LEFT] = "1"
        os.umask(0o022)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--fault-p", type=float, default=0.25, help="chance of a fault after each result")
    parser.add_argument("--stubborn-every", type=int, default=8, help="every Nth trial ignores its stop")
    parser.add_argument("--cpus", type=float, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = _parse()
    totals: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    latencies: list[tuple[float, str, str]] = []
    began = time.time()
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as storage:
            pids = os.path.join(storage, "pids")
            os.makedirs(pids)
            config = {"seed": at.randint(0, 10**9), "fault_p": args.fault_p, "pids": pids,
                      "stubborn": at.choice([True] + [False] * (args.stubborn_every - 1))}
            bound = 60 + 6 * args.trials  # a hang fails the run, it does not hold the soak
            start = time.time()
            analysis = at.run(faulty, config=config, num_samples=args.trials, max_failures=-1,
                              stop=_stopper, stop_grace_s=1.0, time_budget_s=bound, storage_path=storage,
                              seed=args.seed * 1000 + run, verbose=0,
                              executor=at.LocalExecutor(cpus=args.cpus, kill_grace_s=1.0))
            took = time.time() - start
            if took >= bound:
                problems.append(f"run {run}: did not end within its bound of {bound} s")
            totals["runs"] += 1
            _check(analysis, pids, problems, totals, latencies, run)
            print(f"run {run}: {len(analysis.trials)} trials in {took:.1f} s", flush=True)
    latencies.sort(reverse=True)
    faults = {k: v for k, v in totals.items() if k in (*FAULTS, "stubborn")}
    print(f"soak_workers: {totals['runs']} runs, {totals['trials']} trials in {time.time() - began:.0f} s")
    print(f"  faults injected: {sum(faults.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(faults.items()))})")
    print(f"  failed attempts retried: {totals['failures']}; results checked: {totals['results']}")
    if latencies:
        top = latencies[0]
        median = sorted(x for x, _, _ in latencies)[len(latencies) // 2]
        print(f"  fault to its event: median {median:.2f} s, longest {top[0]:.2f} s ({top[1]}, {top[2]})")
        by_kind: dict[str, list[float]] = collections.defaultdict(list)
        for seconds, _, kind in latencies:
            by_kind[kind].append(seconds)
        print("  longest by fault: " + ", ".join(f"{k} {max(v):.2f} s" for k, v in sorted(by_kind.items())))
    print(f"  invariant violations: {len(problems)}")
    for problem in problems[:20]:
        print("   ", problem)
    raise SystemExit(1 if problems else 0)


def _stopper(trial_id: str, result: dict) -> bool:
    return bool(result.get("stubborn")) and result["training_iteration"] >= 2


def _check(analysis, pids: str, problems: list[str], totals, latencies, run: int) -> None:
    journal = collections.defaultdict(list)
    with open(os.path.join(analysis.experiment_dir, "journal.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            journal[event["trial_id"]].append(event)
    for trial in analysis.trials:
        where = f"run {run} {trial.trial_id}"
        totals["trials"] += 1
        totals["failures"] += trial.num_failures
        if trial.status is not at.Status.TERMINATED:
            problems.append(f"{where}: {trial.status.value} ({trial.error})")
        with open(os.path.join(trial.path, "result.jsonl")) as f:
            results = [json.loads(line) for line in f]
        totals["results"] += len(results)
        steps = [r["i"] for r in results]
        expected = list(range(1, 3 if trial.config["stubborn"] else STEPS + 1))
        if steps != expected:
            problems.append(f"{where}: steps {steps}, expected {expected}")
        if not all(r["clean"] for r in results):
            problems.append(f"{where}: started on a worker an earlier trial had changed")
        faults_file = os.path.join(trial.path, "faults.jsonl")
        if not os.path.exists(faults_file):
            continue
        with open(faults_file) as f:
            faults = [json.loads(line) for line in f]
        for fault in faults:
            totals[fault["kind"]] += 1
            if fault["kind"] == "dirty":
                continue  # no event: the worker is retired as the trial ends
            after = [e for e in journal[trial.trial_id] if e["time"] >= fault["time"] and e["event"] != "added"]
            if not after:
                problems.append(f"{where}: its {fault['kind']} fault reached the driver as no event")
                continue
            latencies.append((after[0]["time"] - fault["time"], where, fault["kind"]))
    time.sleep(0.5)
    for name in os.listdir(pids):
        for pid in map(int, open(os.path.join(pids, name)).read().split()):
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    problems.append(f"run {run}: process {pid} a killed worker's trial started is alive")
                    os.kill(pid, signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass


if __name__ == "__main__":
    sys.exit(main())
