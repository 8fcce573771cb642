"""Kill-at-random soak of the experiment directory's promises (issue 27), PBT clones included.

    PYTHONPATH=. python benchmarks/soak_store.py              # 30 kills
    PYTHONPATH=. python benchmarks/soak_store.py --kills 40 --seed 3

A PBT experiment whose trials save directory checkpoints of a few MiB (each with a manifest of
its files), so that PBT's clones and the trials' saves take long enough to be hit, runs in a
driver process that is SIGKILLed (with its workers: the whole process group) at a random moment,
then resumed by a new driver, --kills times; a last driver finishes it. Meanwhile each session
is also sent a second driver (`asynctune resume DIR`), which must be refused.

Checked after every kill: every `checkpoint_*` directory that has its completion marker holds
every file its manifest names, whole ("checkpoints checked"), and the checkpoint resume would
restore for each trial (`latest_checkpoint` up to its last recorded result) is such a one
("restores checked"). At the end: the experiment FINISHED, no trial failed (a trial that restored
a partial checkpoint fails), every trial's result.jsonl holds each iteration once, in order.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import asynctune as at
from asynctune.store.layout import latest_checkpoint, read_results

MARKER = ".asynctune.json"
ITERATIONS = 600

DRIVER = textwrap.dedent(f"""
    import json, os, sys, time
    import asynctune as at

    def train(config):
        restored = at.get_checkpoint()
        start = 0
        if restored is not None:  # a directory: check it is whole before trusting it
            with open(os.path.join(restored, "manifest.json")) as f:
                manifest = json.load(f)
            for name, size in manifest["files"].items():
                if os.path.getsize(os.path.join(restored, name)) != size:
                    raise RuntimeError(f"restored a partial checkpoint {{restored}}: {{name}}")
            start = manifest["step"]
        work = os.path.join(at.get_trial_dir(), "work")
        for step in range(start, {ITERATIONS}):
            time.sleep(0.03)
            os.makedirs(work, exist_ok=True)
            files = {{}}
            for part in range(4):
                name = f"weights_{{part}}.bin"
                with open(os.path.join(work, name), "wb") as f:
                    f.write(bytes([step % 256]) * (1 << 20))
                files[name] = 1 << 20
            with open(os.path.join(work, "manifest.json"), "w") as f:
                json.dump({{"step": step + 1, "files": files}}, f)
            at.report(score=config["lr"] * (step + 1), checkpoint=work)

    if __name__ == "__main__":
        storage, mode = sys.argv[1], sys.argv[2]
        if mode == "start":
            at.run(train, config={{"lr": at.uniform(0.1, 1.0)}}, num_samples=4, resources_per_trial={{"cpu": 0.5}},
                   scheduler=at.PopulationBasedTraining(perturbation_interval=2,
                                                         hyperparam_mutations={{"lr": at.uniform(0.1, 1.0)}}, seed=0),
                   metric="score", mode="max", storage_path=storage, name="soak", seed=0, verbose=0,
                   keep_checkpoints_num=2)
        else:
            at.resume(os.path.join(storage, "soak"), verbose=0)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-second", action="store_true",
                        help="send no second driver (for a version without the lock, where it would run along)")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR (kept afterwards) instead of a temporary directory")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    figures = dict(kills=0, checkpoints=0, restores=0, mid_clone=0, mid_save=0, refused=0, violations=0)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        storage = args.keep or scratch
        os.makedirs(storage, exist_ok=True)
        script = os.path.join(storage, "driver.py")
        with open(script, "w") as f:
            f.write(DRIVER)
        experiment = os.path.join(storage, "soak")
        start = time.time()
        for kill in range(args.kills):
            driver = _start(script, storage, "start" if kill == 0 else "resume")
            while kill == 0 and driver.poll() is None and not os.path.exists(os.path.join(experiment, "experiment.json")):
                time.sleep(0.05)  # the first session makes the experiment; the others may be killed as they start
            time.sleep(rng.uniform(0.3, 1.5))
            if not args.no_second and driver.poll() is None and _holder_pid(experiment) == driver.pid:
                # It holds the experiment (not still starting, when the second one would be the first).
                second = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", experiment],
                                        capture_output=True, text=True, timeout=120)
                if driver.poll() is None:  # still driving: the second one must have been refused
                    if second.returncode != 0 and "being driven by another process" in second.stderr:
                        figures["refused"] += 1
                    else:
                        problems.append(f"kill {kill}: a second driver was not refused: {second.stderr[-300:]}")
            time.sleep(rng.uniform(0.0, 1.0))
            if driver.poll() is not None:
                out = driver.communicate()[0]
                if driver.returncode != 0:
                    problems.append(f"session {kill} failed (code {driver.returncode}): {out[-500:]}")
                break  # it finished the experiment before its kill came
            os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate()
            figures["kills"] += 1
            _check_after_kill(experiment, figures, problems)
        if problems:
            print("\n".join(problems), file=sys.stderr)
        final = _start(script, storage, "resume")
        out = final.communicate(timeout=600)[0]
        if final.returncode != 0:
            problems.append(f"the last session failed ({final.returncode}): {out[-800:]}")
        _check_end(experiment, problems)
        elapsed = time.time() - start
    problems = list(dict.fromkeys(problems))  # a damaged checkpoint is found again after every later kill
    figures["violations"] = len(problems)
    print(f"soak_store: {figures['kills']} driver kills (with their workers) in {elapsed:.0f} s; "
          f"{figures['mid_clone']} landed mid-clone, {figures['mid_save']} mid-save (a staged directory left)")
    print(f"  checkpoints checked: {figures['checkpoints']}; restores checked: {figures['restores']}; "
          f"second drivers refused: {figures['refused']}")
    print(f"  invariant violations: {figures['violations']}")
    for problem in problems[:20]:
        print("   ", problem)
    raise SystemExit(1 if problems else 0)


def _start(script: str, storage: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, script, storage, mode], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own process group: killed with its workers


def _holder_pid(experiment: str) -> int | None:
    try:
        with open(os.path.join(experiment, "driver.lock")) as f:
            return json.load(f).get("pid")
    except (OSError, ValueError):
        return None


def _trial_dirs(experiment: str) -> list[str]:
    try:
        return sorted(os.path.join(experiment, n) for n in os.listdir(experiment) if n.startswith("trial_"))
    except FileNotFoundError:
        return []


def _whole(checkpoint: str) -> bool:
    try:
        with open(os.path.join(checkpoint, "manifest.json")) as f:
            manifest = json.load(f)
        return all(os.path.getsize(os.path.join(checkpoint, n)) == size for n, size in manifest["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def _check_after_kill(experiment: str, figures: dict[str, int], problems: list[str]) -> None:
    for trial_dir in _trial_dirs(experiment):
        names = os.listdir(trial_dir)
        figures["mid_clone"] += any(n.startswith(".tmp-checkpoint_clone") for n in names)
        figures["mid_save"] += any(n.startswith(".tmp-checkpoint_0") for n in names)
        for name in names:  # published under its name only once whole: every one, marker or not
            path = os.path.join(trial_dir, name)
            if name.startswith("checkpoint_"):
                figures["checkpoints"] += 1
                if not _whole(path):
                    marked = "with" if os.path.exists(os.path.join(path, MARKER)) else "without"
                    problems.append(f"{path} ({marked} its completion marker) is not whole")
        last = max((r.get("training_iteration", 0) for r in read_results(trial_dir)), default=0)
        picked = latest_checkpoint(trial_dir, max_iteration=last)
        if picked is not None:
            figures["restores"] += 1
            if not _whole(picked[0]):
                problems.append(f"resume would restore {picked[0]}, which is not whole")


def _check_end(experiment: str, problems: list[str]) -> None:
    """Finished, nothing failed, every trial reached the end; results neither doubled nor lost: a
    trial's iterations go up by one, except where PBT cloned a donor (it goes on from the donor's)."""
    analysis = at.ExperimentAnalysis(experiment)
    if analysis.status != "FINISHED":
        problems.append(f"the experiment ended {analysis.status}")
    clones = {}
    for decision in analysis.decisions():
        if decision.get("decision") == "MUTATE":
            clones[decision["trial_id"]] = clones.get(decision["trial_id"], 0) + 1
    for trial in analysis.trials:
        if trial.status is at.Status.ERROR:
            problems.append(f"{trial.trial_id} failed: {trial.error}")
        results = read_results(trial.path)
        iterations = [r.get("training_iteration") for r in results]
        jumps = sum(1 for a, b in zip(iterations, iterations[1:]) if b != a + 1)
        times = [r.get("timestamp", 0) for r in results]
        reached = max(iterations[-1] if iterations else 0, _meta_iteration(trial.checkpoint))  # a clone of a finished donor
        if reached != ITERATIONS or jumps > clones.get(trial.trial_id, 0) \
                or times != sorted(times):
            problems.append(f"{trial.trial_id}: result.jsonl iterations {iterations} "
                            f"({jumps} jumps, {clones.get(trial.trial_id, 0)} clones)")


def _meta_iteration(checkpoint: str | None) -> int:
    try:
        with open(os.path.join(checkpoint or "", MARKER)) as f:
            return int(json.load(f).get("iteration", 0))
    except (OSError, ValueError):
        return 0


if __name__ == "__main__":
    main()
