"""PBT with a population larger than the workers: does the population train together?

    python benchmarks/pbt_time_sharing.py                      # population 16 on 4 workers, 5 seeds
    python benchmarks/pbt_time_sharing.py --workers 2 --seeds 10

Replays the recorded workload of compare_schedulers.py (mlp_digits) on the simulated executor
with compare_schedulers' PBT setup (perturbation every 3 epochs, optimiser hyperparameters
explored, a checkpoint every 3 epochs) and a population of 4x the workers, every member trained
to the table's epochs (stop=). It prints a markdown table, per seed and summarised:

* own results per member (min / median / max): what each member trained itself; in turns,
  every member trains about as long, without them the first ones train alone to the end;
* spread: when the first member reaches max_t, how far the least trained member is behind;
* past stop: results beyond stop={"training_iteration": max_t} (clones of finished donors);
* best: the best final val_error of the population, and the virtual time to the end.

Run it in an older checkout (the script and compare_schedulers.py copied there) for the before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's asynctune, when run as a script
sys.path.insert(0, HERE)

import asynctune  # noqa: E402
from asynctune import Callback  # noqa: E402
from asynctune.executors.simulated import SimulatedExecutor, replay  # noqa: E402

from compare_schedulers import DEFAULT_WORKLOAD, _load, _pbt  # noqa: E402


class _Progress(Callback):
    """Each member's own results and the (time, iteration) of each."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str, int]] = []

    def on_trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        self.rows.append((float(result["timestamp"]), trial.trial_id, int(result["training_iteration"])))


def run_one(seed: int, workers: int, population: int, workload_path: str) -> dict[str, Any]:
    workload = _load(workload_path)
    max_t = workload.max_epochs
    setup = _pbt(workload, seed, population)
    progress = _Progress()
    with tempfile.TemporaryDirectory(prefix="asynctune-pbt-") as storage:
        analysis = asynctune.run(
            replay, config=workload.space(), num_samples=population, metric=workload.metric, mode=workload.mode,
            scheduler=setup.scheduler, executor=SimulatedExecutor(workload, n_workers=workers, seed=seed),
            stop={"training_iteration": max_t}, checkpoint_frequency=setup.checkpoint_frequency,
            storage_path=storage, name="run", seed=seed, verbose=0, callbacks=[progress])
        finals = [t.last_result[workload.metric] for t in analysis.trials
                  if t.last_result and t.last_result.get("training_iteration", 0) >= max_t]
    own = sorted(sum(1 for _, trial_id, _ in progress.rows if trial_id == t.trial_id) for t in analysis.trials)
    first_done = min(when for when, _, it in progress.rows if it >= max_t)
    reached: dict[str, int] = {}
    for when, trial_id, it in sorted(progress.rows):
        if when > first_done:
            break
        reached[trial_id] = max(reached.get(trial_id, 0), it)
    least = min(reached.get(t.trial_id, 0) for t in analysis.trials)
    return {"seed": seed, "own_min": own[0], "own_median": statistics.median(own), "own_max": own[-1],
            "spread": max_t - least, "past_stop": sum(1 for _, _, it in progress.rows if it > max_t),
            "best": min(finals) if workload.mode == "min" else max(finals),
            "end_s": max(when for when, _, _ in progress.rows), "max_t": max_t}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--population", type=int, help="default: 4x the workers")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    population = args.population or 4 * args.workers
    rows = [run_one(seed, args.workers, population, args.workload) for seed in range(args.seeds)]
    print(f"PBT, population {population} on {args.workers} workers, {os.path.basename(args.workload)}, "
          f"max_t {rows[0]['max_t']} epochs\n")
    print("| seed | own results per member (min / median / max) | spread at first max_t (epochs) "
          "| results past stop | best val | end (virtual s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['own_min']} / {r['own_median']:g} / {r['own_max']} | {r['spread']} "
              f"| {r['past_stop']} | {r['best']:.4f} | {r['end_s']:.0f} |")
    med = {k: statistics.median(r[k] for r in rows) for k in ("own_min", "own_median", "own_max", "spread",
                                                              "past_stop", "best", "end_s")}
    print(f"| median | {med['own_min']:g} / {med['own_median']:g} / {med['own_max']:g} | {med['spread']:g} "
          f"| {med['past_stop']:g} | {med['best']:.4f} | {med['end_s']:.0f} |")
    return rows


if __name__ == "__main__":
    main()
