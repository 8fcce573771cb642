"""Per-result cost of the schedulers as the number of trials grows.

Feeds scripted results straight to each scheduler (no workers, no controller): every trial
reports `--iterations` results with a random metric, trials interleaved as on a busy cluster.
Prints results/s for each trial count (median of `--repeats`); a scheduler whose cost per
result is O(log n) shows about the same rate at 100 and at 5,000 trials. Time is the CPU time
of this process spent in the scheduler's hooks, so other load on the machine does not count.

    python benchmarks/scheduler_cost.py            # ASHA, 100 and 5,000 trials
    python benchmarks/scheduler_cost.py --all      # every scheduler of issue 4
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from collections.abc import Callable

import numpy as np

from asynctune import (
    PAUSE, STOP, ASHAScheduler, HyperBandScheduler, MedianStoppingRule, PopulationBasedTraining, Scheduler,
    Status, Trial, uniform,
)

SCHEDULERS: dict[str, Callable[[int], Scheduler]] = {
    "ASHA (stopping)": lambda max_t: ASHAScheduler(metric="loss", mode="min", max_t=max_t, reduction_factor=3),
    "ASHA (promotion)": lambda max_t: ASHAScheduler(metric="loss", mode="min", max_t=max_t, reduction_factor=3,
                                                    variant="promotion"),
    "MedianStoppingRule": lambda max_t: MedianStoppingRule(metric="loss", mode="min", grace_period=1,
                                                           min_samples_required=3),
    "HyperBand": lambda max_t: HyperBandScheduler(metric="loss", mode="min", max_t=max_t, reduction_factor=3),
    "PBT": lambda max_t: PopulationBasedTraining(metric="loss", mode="min", perturbation_interval=3,
                                                 hyperparam_mutations={"lr": uniform(0, 1)}, seed=0),
}


class _NullControl:
    def __init__(self, trials: list[Trial]) -> None:
        self.trials = trials

    def stop_trial(self, trial: Trial) -> None:
        trial.status = Status.TERMINATED

    def pause_trial(self, trial: Trial) -> None:
        trial.status = Status.PAUSED

    def resume_trial(self, trial: Trial, **_: object) -> None:
        trial.status = Status.RUNNING  # resumed at once: the benchmark has no workers to wait for


async def _feed(make: Callable[[int], Scheduler], n_trials: int, iterations: int, seed: int) -> tuple[int, float]:
    """Feed every result once; a paused or stopped trial stops reporting.

    Returns (results, seconds spent in the scheduler's hooks).
    """
    rng = np.random.default_rng(seed)
    scheduler = make(iterations)
    trials = [Trial(f"t{i}", {"lr": 0.1}, index=i, status=Status.RUNNING) for i in range(n_trials)]
    await scheduler.start(_NullControl(trials))
    for trial in trials:
        scheduler.on_trial_add(trial)
    # Trials progress at their own speed: a random interleaving of everyone's steps.
    order = np.repeat(np.arange(n_trials), iterations)
    rng.shuffle(order)
    losses = rng.normal(size=n_trials)
    step = [0] * n_trials
    count, elapsed = 0, 0.0
    for index in order:
        trial = trials[index]
        if trial.status is not Status.RUNNING:
            continue  # stopped or paused: it reports no more (this skipping is not timed)
        step[index] += 1
        result = {"training_iteration": step[index], "loss": float(losses[index]) + 1 / step[index]}
        trial.last_result = result
        trial.checkpoint = "ckpt"
        started = time.process_time()
        decision = scheduler.on_trial_result(trial, result)
        if inspect.isawaitable(decision):
            decision = await decision
        if decision is STOP:
            trial.status = Status.TERMINATED
            scheduler.on_trial_complete(trial, result)
        elif decision is PAUSE:
            trial.status = Status.PAUSED
        elapsed += time.process_time() - started
        count += 1
    for trial in trials:  # what a paused trial waits for (a promotion) is not part of this measure
        if trial.status is Status.PAUSED:
            trial.status = Status.TERMINATED
    await scheduler.close()
    return count, elapsed


def results_per_second(make: Callable[[int], Scheduler], n_trials: int, iterations: int, repeats: int) -> float:
    rates = []
    for repeat in range(repeats):
        count, elapsed = asyncio.run(_feed(make, n_trials, iterations, seed=repeat))
        rates.append(count / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 5000])
    parser.add_argument("--iterations", type=int, default=27, help="results per trial (and max_t)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="every scheduler, not only ASHA")
    args = parser.parse_args()
    names = list(SCHEDULERS) if args.all else ["ASHA (stopping)"]
    header = f"{'scheduler':<20}" + "".join(f"{f'{n} trials':>16}" for n in args.trials)
    print(f"results/s, median of {args.repeats} (each trial reports up to {args.iterations} results)")
    print(header)
    for name in names:
        rates = [results_per_second(SCHEDULERS[name], n, args.iterations, args.repeats) for n in args.trials]
        print(f"{name:<20}" + "".join(f"{rate:>16,.0f}" for rate in rates))


if __name__ == "__main__":
    main()
