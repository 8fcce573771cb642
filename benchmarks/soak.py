"""Soak test (not part of the default test run): many short trials with random failures and
random worker kills, then check the invariants asynctune promises.

    PYTHONPATH=. python benchmarks/soak.py     # 2,000 trials (PYTHONPATH: this checkout's asynctune)
    python benchmarks/soak.py --trials 300     # shorter
    python benchmarks/soak.py --trials 300 --driver-kills 5
                                               # the driver in a process of its own, SIGKILLed 5 times at
                                               # random; after each kill the file last written gets a torn
                                               # last line (result.jsonl or journal.jsonl, cut mid-line);
                                               # each next session resumes
    ... --driver-kills 5 --unwritable 2        # also make 2 running trials' directories unwritable mid-run
                                               # (chmod 0500, and chattr +i as root); off by default

Invariants checked: every trial ends TERMINATED or ERROR; each trial's result.jsonl holds each
training_iteration exactly once, in order, as strict JSON; nothing the trial reported is missing
(results past a restore point are in result.rewound.jsonl); every trial directory is in the
trial table once; no worker process is left.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

import asynctune as at


def flaky(config):
    import random

    rng = random.Random(config["seed"] * 1000 + (at.get_checkpoint() or {}).get("i", 0) + os.getpid())
    checkpoint = at.get_checkpoint()
    start = checkpoint["i"] if checkpoint else 0
    for i in range(start, 3):
        at.report(i=i + 1, value=config["seed"] * (i + 1), checkpoint={"i": i + 1} if i == 1 else None)
        roll = rng.random()
        if roll < config["fail_p"]:
            raise RuntimeError("random failure")
        if roll < config["fail_p"] + config["kill_p"]:
            os.kill(os.getpid(), signal.SIGKILL)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--fail-p", type=float, default=0.05, help="chance of an exception after each result")
    parser.add_argument("--kill-p", type=float, default=0.01, help="chance of SIGKILL after each result")
    parser.add_argument("--max-failures", type=int, default=2)
    parser.add_argument("--driver-kills", type=int, default=0,
                        help="SIGKILL the driver this many times, tearing the file it wrote last each time")
    parser.add_argument("--unwritable", type=int, default=0,
                        help="make this many running trials' directories unwritable mid-run (needs --driver-kills)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule")
    parser.add_argument("--child", nargs=2, metavar=("STORAGE", "NAME"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _run(args: argparse.Namespace, storage: str, name: str | None = None) -> at.ExperimentAnalysis:
    return at.run(flaky, config={"seed": at.randint(0, 10**6), "fail_p": args.fail_p, "kill_p": args.kill_p},
                  num_samples=args.trials, max_failures=args.max_failures, storage_path=storage, verbose=0,
                  seed=0, name=name, resume=name is not None)


def main() -> None:
    args = _parse()
    if args.child:  # one session of a --driver-kills soak: start or continue the experiment
        _run(args, args.child[0], args.child[1])
        return
    with tempfile.TemporaryDirectory() as storage:
        start = time.time()
        faults: collections.Counter[str] = collections.Counter()
        if args.driver_kills:
            locked: list[str] = []
            try:
                experiment_dir = _sessions_with_faults(args, storage, faults, locked)
            finally:
                for path in locked:  # an immutable directory could not even be deleted
                    _unlock(path)
            try:
                analysis = at.resume(experiment_dir, verbose=0)
            except Exception as exc:  # noqa: BLE001  the figures say what went wrong
                print(f"soak: the last session failed: {type(exc).__name__}: {exc}")
                print(f"  faults injected: {dict(faults)}\n  invariant violations: 1")
                raise SystemExit(1) from None
        else:
            analysis = _run(args, storage)
        elapsed = time.time() - start
        problems, figures = _check(analysis)
    print(f"soak: {len(analysis.trials)} trials in {elapsed:.1f} s ({len(analysis.trials) / elapsed:.0f} trials/s)")
    print(f"  final states: {figures['statuses']}")
    print(f"  failed attempts: {figures['failures']} (of which worker SIGKILLs: {figures['kills']}); "
          f"results rewound and reported again: {figures['rewound']}; journal events: {figures['journal']}")
    if faults:
        print(f"  faults injected: {sum(faults.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(faults.items()))})")
    print(f"  results checked: {figures['results']}; torn lines moved aside: {figures['torn']}")
    print(f"  invariant violations: {len(problems)}")
    for problem in problems[:20]:
        print("   ", problem)
    raise SystemExit(1 if problems else 0)


def _sessions_with_faults(args: argparse.Namespace, storage: str, faults: collections.Counter[str],
                          locked: list[str]) -> str:
    """Run the experiment in driver processes, SIGKILLing each at a random moment; between
    sessions, tear the last line of the file written last, as a kill mid-write would."""
    rng = random.Random(args.seed)
    name = "soak"
    experiment_dir = os.path.join(storage, name)
    unwritable_left = args.unwritable
    for _ in range(args.driver_kills):
        driver = subprocess.Popen([sys.executable, os.path.abspath(__file__), *_child_args(args), "--child", storage, name],
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                      os.path.dirname(os.path.dirname(os.path.abspath(at.__file__))),
                                      os.environ.get("PYTHONPATH")]))})
        started = time.time() + 60  # the kill comes at a random time after the session's first trial
        while time.time() < started and driver.poll() is None and not os.path.exists(
                os.path.join(experiment_dir, "journal.jsonl")):
            time.sleep(0.05)
        deadline = time.time() + rng.uniform(0.5, 5.0)
        session_locked: list[str] = []
        while time.time() < deadline and driver.poll() is None:
            time.sleep(0.1)
            if unwritable_left and rng.random() < 0.05:
                target = _running_trial_dir(experiment_dir, rng)
                if target is not None and target not in locked:  # a locked one may still look RUNNING
                    locked.append(target)
                    session_locked.append(target)
                    _lock(target)
                    unwritable_left -= 1
                    faults["unwritable trial directory"] += 1
        if driver.poll() is not None:
            for path in session_locked:
                _unlock(path)
            break  # finished (or failed) before this kill
        workers = psutil.Process(driver.pid).children(recursive=True)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        psutil.wait_procs(workers, timeout=10)
        faults["driver SIGKILL"] += 1
        for path in session_locked:
            _unlock(path)
        if _tear_last_written(experiment_dir, rng):
            faults["torn last line"] += 1
    return experiment_dir


def _child_args(args: argparse.Namespace) -> list[str]:
    return ["--trials", str(args.trials), "--fail-p", str(args.fail_p), "--kill-p", str(args.kill_p),
            "--max-failures", str(args.max_failures)]


def _tear_last_written(experiment_dir: str, rng: random.Random) -> bool:
    """Cut the last line of the most recently written result.jsonl or journal.jsonl mid-way."""
    if not os.path.isdir(experiment_dir):
        return False
    candidates = [os.path.join(experiment_dir, "journal.jsonl")]
    for entry in os.scandir(experiment_dir):
        if entry.is_dir() and entry.name.startswith("trial_"):
            candidates.append(os.path.join(entry.path, "result.jsonl"))
    candidates = [p for p in candidates if os.path.exists(p) and os.path.getsize(p) > 1]
    if not candidates:
        return False
    path = max(candidates, key=os.path.getmtime)
    with open(path, "rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            return False  # still torn: the last session was killed before it opened the file
        start = data.rfind(b"\n", 0, len(data) - 1) + 1
        if len(data) - start < 3:
            return False
        f.truncate(start + rng.randrange(1, len(data) - start - 1))
    return True


def _running_trial_dir(experiment_dir: str, rng: random.Random) -> str | None:
    status: dict[str, str] = {}
    try:
        with open(os.path.join(experiment_dir, "journal.jsonl")) as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                status[event["trial_id"]] = event["status"]
    except OSError:
        return None
    running = sorted(t for t, s in status.items() if s == "RUNNING")
    return os.path.join(experiment_dir, rng.choice(running)) if running else None


def _lock(path: str) -> None:
    os.chmod(path, 0o500)
    if os.geteuid() == 0 and shutil.which("chattr"):  # root ignores modes
        subprocess.run(["chattr", "+i", path], check=False, capture_output=True)


def _unlock(path: str) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", path], check=False, capture_output=True)
    os.chmod(path, 0o700)


def _strict(line: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def _check(analysis: at.ExperimentAnalysis) -> tuple[list[str], dict]:
    statuses = collections.Counter(t.status.value for t in analysis.trials)
    problems = []
    failures = sum(t.num_failures for t in analysis.trials)
    kills = rewound = results = torn = 0
    ids = [t.trial_id for t in analysis.trials]
    directories = sorted(n for n in os.listdir(analysis.experiment_dir) if n.startswith("trial_"))
    if sorted(ids) != directories or len(set(ids)) != len(ids):
        problems.append(f"trial table {len(ids)} trials, {len(set(ids))} ids, {len(directories)} directories")
    for trial in analysis.trials:
        if not trial.status.is_finished:
            problems.append(f"{trial.trial_id} ended {trial.status.value}")
        try:
            with open(os.path.join(trial.path, "result.jsonl")) as f:
                lines = [_strict(line) for line in f]
        except (OSError, ValueError) as exc:
            problems.append(f"{trial.trial_id} result.jsonl: {exc}")
            lines = []
        results += len(lines)
        iterations = [r["i"] for r in lines]
        if iterations != list(range(1, len(iterations) + 1)) or any(r["trial_id"] != trial.trial_id for r in lines):
            problems.append(f"{trial.trial_id} results {iterations}")
        if trial.status is at.Status.TERMINATED and iterations != [1, 2, 3]:
            problems.append(f"{trial.trial_id} finished with results {iterations}")
        errors = os.path.join(trial.path, "error.txt")
        if os.path.exists(errors):
            with open(errors) as f:
                kills += f.read().count("SIGKILL")
        rewound_file = os.path.join(trial.path, "result.rewound.jsonl")
        if os.path.exists(rewound_file):
            with open(rewound_file) as f:
                rewound += sum(1 for _ in f)
        torn += _count_lines(os.path.join(trial.path, "result.jsonl.torn"))
    leftover = psutil.Process().children(recursive=True)
    if leftover:
        problems.append(f"processes left: {leftover}")
    journal_path = os.path.join(analysis.experiment_dir, "journal.jsonl")
    try:
        with open(journal_path) as f:
            journal = [_strict(line) for line in f]
    except ValueError as exc:
        problems.append(f"journal.jsonl: {exc}")
        journal = []
    torn += _count_lines(journal_path + ".torn")
    return problems, {"statuses": dict(statuses), "failures": failures, "kills": kills, "rewound": rewound,
                      "journal": len(journal), "results": results, "torn": torn}


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


if __name__ == "__main__":
    main()
