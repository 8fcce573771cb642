"""Soak test (not part of the default test run): many short trials with random failures and
random worker kills, then check the invariants asynctune promises.

    python benchmarks/soak.py                  # 2,000 trials
    python benchmarks/soak.py --trials 300     # shorter

Invariants checked: every trial ends TERMINATED or ERROR; each trial's result.jsonl holds each
training_iteration exactly once, in order; nothing the trial reported is missing (results past a
restore point are in result.rewound.jsonl); no worker process is left.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--fail-p", type=float, default=0.05, help="chance of an exception after each result")
    parser.add_argument("--kill-p", type=float, default=0.01, help="chance of SIGKILL after each result")
    parser.add_argument("--max-failures", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage:
        start = time.time()
        analysis = at.run(flaky, config={"seed": at.randint(0, 10**6), "fail_p": args.fail_p, "kill_p": args.kill_p},
                          num_samples=args.trials, max_failures=args.max_failures, storage_path=storage, verbose=0,
                          seed=0)
        elapsed = time.time() - start
        statuses = collections.Counter(t.status.value for t in analysis.trials)
        problems = []
        failures = sum(t.num_failures for t in analysis.trials)
        kills = rewound = 0
        for trial in analysis.trials:
            if not trial.status.is_finished:
                problems.append(f"{trial.trial_id} ended {trial.status.value}")
            iterations = [r["i"] for r in analysis.trial_results(trial.trial_id)]
            if iterations != list(range(1, len(iterations) + 1)):
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
        leftover = psutil.Process().children(recursive=True)
        if leftover:
            problems.append(f"processes left: {leftover}")
        with open(os.path.join(analysis.experiment_dir, "journal.jsonl")) as f:
            journal = [json.loads(line) for line in f]
    print(f"soak: {len(analysis.trials)} trials in {elapsed:.1f} s ({len(analysis.trials) / elapsed:.0f} trials/s)")
    print(f"  final states: {dict(statuses)}")
    print(f"  failed attempts: {failures} (of which worker SIGKILLs: {kills}); "
          f"results rewound and reported again: {rewound}; journal events: {len(journal)}")
    print(f"  invariant violations: {len(problems)}")
    for problem in problems[:20]:
        print("   ", problem)
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
