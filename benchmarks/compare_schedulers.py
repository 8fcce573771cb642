"""Which scheduler reaches the best model soonest on a workload? Runs each one over several seeds.

    python benchmarks/compare_schedulers.py                                  # simulated, mlp_digits
    python benchmarks/compare_schedulers.py --workload benchmarks/workloads/mlp_breast_cancer.json.gz
    python benchmarks/compare_schedulers.py --real --workers 2 --budget 60 --seeds 2   # real training
    python benchmarks/compare_schedulers.py --methods asha-stop,hyperband --seeds 10 --plot out.png

Every method gets the same number of workers and the same budget (virtual seconds on the
workload's recorded clock with the simulated executor, wall-clock seconds with --real). The
script prints a markdown table: the best metric reached by 25%, 50% and 100% of the budget
(mean and standard deviation over seeds), the time to reach a target value, trials and
results; and it draws best-so-far against time with the spread over seeds as a band.

Methods: random search with FIFO, Median stopping, HyperBand and ASHA (stopping, promotion);
PBT at equal compute (as many members as the budget trains fully, `workers` at a time); TPE and
SkOpt with ASHA; BOHB (BOHBSearch with HyperBand). A simulated run records in batches (no file
per result, see asynctune/storage.py) and keeps its directory on /dev/shm when there is one.

A second table compares PBT with random search at equal compute: a population of P configs
trained for the full number of epochs on P workers, against P random configs trained as long.
--optuna adds Optuna (TPE with its SuccessiveHalving and Hyperband pruners) on the same table
when optuna is installed; it is replayed by a small discrete-event loop of the same shape.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's asynctune, when run as a script

import asynctune  # noqa: E402
from asynctune import Callback  # noqa: E402
from asynctune.executors.simulated import SimulatedExecutor, Workload, replay  # noqa: E402

DEFAULT_WORKLOAD = os.path.join(HERE, "workloads", "mlp_digits.json.gz")
# Each run's experiment directory, deleted after it: in memory (tmpfs) where there is one. A
# simulated run writes its results in batches, but a PAUSE or a PBT checkpoint is still a small
# directory, and on a busy shared disk each costs milliseconds.
SCRATCH = os.environ.get("ASYNCTUNE_SCRATCH", "/dev/shm")
ETA = 3


# The methods ---------------------------------------------------------------------------------------

@dataclass
class Setup:
    """What one method passes to run()."""

    scheduler: Any = None
    search_alg: Any = None
    num_samples: int = -1
    checkpoint_frequency: int = 0
    workers: int | None = None  # None: the comparison's


def _asha(max_t: int, seed: int, variant: str) -> Any:
    from asynctune.algorithms.schedulers.asha import ASHAScheduler

    return ASHAScheduler(max_t=max_t, grace_period=1, reduction_factor=ETA, variant=variant, seed=seed)


def random_fifo(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    return Setup()


def random_median(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    from asynctune.algorithms.schedulers.median_stopping import MedianStoppingRule

    return Setup(scheduler=MedianStoppingRule(grace_period=3, min_samples_required=3))


def random_hyperband(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    from asynctune.algorithms.schedulers.hyperband import HyperBandScheduler

    return Setup(scheduler=HyperBandScheduler(max_t=max_t, reduction_factor=ETA))


def random_asha_stopping(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    return Setup(scheduler=_asha(max_t, seed, "stopping"))


def random_asha_promotion(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    return Setup(scheduler=_asha(max_t, seed, "promotion"))


def _pbt(w: Workload, seed: int, population: int) -> Setup:
    """PBT perturbing every 3 epochs (as Ray Tune's examples do). Only the optimiser's
    hyperparameters are explored: a clone keeps its donor's architecture."""
    from asynctune.algorithms.schedulers.pbt import PopulationBasedTraining

    space = w.space()
    mutations = {k: space[k] for k in ("lr", "momentum", "alpha", "batch_size") if k in space}
    scheduler = PopulationBasedTraining(perturbation_interval=ETA, hyperparam_mutations=mutations or space,
                                        quantile_fraction=0.25, seed=seed)
    return Setup(scheduler=scheduler, num_samples=population, checkpoint_frequency=ETA)


def pbt(w: Workload, max_t: int, seed: int, workers: int, budget: float = math.inf) -> Setup:
    """Equal compute: a population of as many configs as the budget trains fully on the workers
    (20 with the default budget), `workers` of them at a time; later members clone the best
    checkpoints of earlier ones. (A population of only `workers` would leave most of the budget unused.)"""
    full_training = float(w.epoch_time_s[:, :max_t].sum(axis=1).mean())
    population = workers if not math.isfinite(budget) else max(workers, round(budget * workers / full_training))
    return _pbt(w, seed, population)


def pbt_population(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    """The population of the PBT-against-random-search table: `num_samples` (= workers) members at once."""
    return _pbt(w, seed, workers)


def tpe_asha(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    from asynctune.algorithms.search.tpe import TPESearch

    return Setup(scheduler=_asha(max_t, seed, "stopping"), search_alg=TPESearch(seed=seed))


def skopt_asha(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    from skopt.learning import ExtraTreesRegressor

    from asynctune.algorithms.search.skopt_search import SkOptSearch

    # A GP refitted at every one of hundreds of suggestions is too slow; a small forest of
    # extra trees (skopt's "ET" has 100) scored on 500 sampled points keeps a run near a second.
    forest = ExtraTreesRegressor(n_estimators=16, min_samples_leaf=3, random_state=seed)
    return Setup(scheduler=_asha(max_t, seed, "stopping"),
                 search_alg=SkOptSearch(seed=seed, base_estimator=forest, acq_optimizer="sampling",
                                        acq_optimizer_kwargs={"n_points": 500}))


def bohb(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    """BOHB as in Falkner et al. (2018): HyperBand's brackets, TPE over the observations of the
    largest budget with enough of them."""
    from asynctune.algorithms.search.bohb import BOHBSearch
    from asynctune.algorithms.schedulers.hyperband import HyperBandScheduler

    return Setup(scheduler=HyperBandScheduler(max_t=max_t, reduction_factor=ETA), search_alg=BOHBSearch(seed=seed))


METHODS: dict[str, tuple[str, Callable[..., Setup]]] = {
    "fifo": ("random + FIFO", random_fifo),
    "median": ("random + Median stopping", random_median),
    "hyperband": ("random + HyperBand", random_hyperband),
    "asha-stop": ("random + ASHA (stopping)", random_asha_stopping),
    "asha-promote": ("random + ASHA (promotion)", random_asha_promotion),
    "pbt": ("PBT (equal compute)", pbt),
    "tpe-asha": ("TPE + ASHA", tpe_asha),
    "skopt-asha": ("SkOpt + ASHA", skopt_asha),
    "bohb": ("BOHB (TPE + HyperBand)", bohb),
}


def random_asha_brackets(w: Workload, max_t: int, seed: int, workers: int) -> Setup:
    """Asynchronous HyperBand: ASHA (stopping) with 4 brackets (the peer script compares it)."""
    from asynctune.algorithms.schedulers.asha import ASHAScheduler

    return Setup(scheduler=ASHAScheduler(max_t=max_t, grace_period=1, reduction_factor=ETA, brackets=4,
                                         variant="stopping", seed=seed))


# Set-ups outside the main table: the PBT-against-random-search table's, the peer script's.
EXTRA = {"pbt-population": pbt_population, "asha-brackets": random_asha_brackets}


# One run ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _load(path: str) -> Workload:
    """Each process loads a workload once (a run only reads it)."""
    return Workload.load(path)


@dataclass
class Trace:
    """What one run produced: (time, value) of every result, in time order, and counts."""

    method: str
    seed: int
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    trials: int = 0
    results: int = 0  # every result the run produced (past the budget too: a result ends at its end)
    wall_s: float = 0.0
    error: str = ""
    finals: list[float] = field(default_factory=list)  # the metric of each trial that trained to max_t

    def best_by(self, t: float, mode: str) -> float:
        """The best value of any result reported at or before time t (NaN: none yet)."""
        best = math.nan
        for when, value in zip(self.times, self.values):
            if when > t + 1e-9:
                break
            if math.isnan(best) or (value < best if mode == "min" else value > best):
                best = value
        return best

    def time_to(self, target: float, mode: str) -> float:
        for when, value in zip(self.times, self.values):
            if (value <= target) if mode == "min" else (value >= target):
                return when
        return math.inf


class _Collect(Callback):
    def __init__(self, metric: str, max_t: int) -> None:
        self.metric, self.max_t = metric, max_t
        self.points: list[tuple[float, float]] = []
        self.finals: list[float] = []

    def on_trial_result(self, trial: Any, result: dict[str, Any]) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.points.append((float(result["timestamp"]), float(value)))
            if result.get("training_iteration", 0) >= self.max_t:
                self.finals.append(float(value))


def _setup(method: str, workload: Workload, max_t: int, seed: int, workers: int, budget: float) -> Setup:
    if method == "pbt":
        return pbt(workload, max_t, seed, workers, budget)
    return {**{k: v[1] for k, v in METHODS.items()}, **EXTRA}[method](workload, max_t, seed, workers)


def run_one(method: str, seed: int, workload_path: str, workers: int, budget: float, real: bool,
            max_t: int | None = None, num_samples: int | None = None, overhead_s: float = 0.0) -> Trace:
    """One method, one seed. A top-level function, so runs can go to a process pool."""
    workload = _load(workload_path)
    max_t = max_t or workload.max_epochs
    setup = _setup(method, workload, max_t, seed, workers, budget)
    if num_samples is not None:
        setup.num_samples = num_samples
    n_workers = setup.workers or workers
    collect = _Collect(workload.metric, max_t)
    storage = tempfile.mkdtemp(prefix="asynctune-compare-", dir=SCRATCH if os.path.isdir(SCRATCH) else None)
    trace = Trace(method, seed)
    started = time.perf_counter()
    if real:
        sys.path.insert(0, HERE)
        from record_workload import make_trainable

        trainable = make_trainable(workload.name.removeprefix("mlp_"), max_t,
                                   checkpoint_every=setup.checkpoint_frequency)
        executor = asynctune.LocalExecutor(cpus=n_workers)
    else:
        trainable = replay
        executor = SimulatedExecutor(workload, n_workers=n_workers, seed=seed, overhead_s=overhead_s)
    try:
        analysis = asynctune.run(
            trainable, config=workload.space(), num_samples=setup.num_samples, metric=workload.metric,
            mode=workload.mode, scheduler=setup.scheduler, search_alg=setup.search_alg, executor=executor,
            stop={"training_iteration": max_t}, time_budget_s=budget if math.isfinite(budget) else None, checkpoint_frequency=setup.checkpoint_frequency,
            storage_path=storage, name="run", seed=seed, verbose=0, callbacks=[collect],
        )
        trace.trials = len(analysis.trials)
        start = min((t.start_time for t in analysis.trials if t.start_time is not None), default=0.0)
    except Exception as exc:  # a failing method must not sink the whole comparison
        trace.error = f"{type(exc).__name__}: {exc}"
        start = 0.0
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    trace.wall_s = time.perf_counter() - started
    trace.results = len(collect.points)
    points = sorted((t - start, v) for t, v in collect.points if t - start <= budget + 1e-9)
    trace.times = [p[0] for p in points]
    trace.values = [p[1] for p in points]
    trace.finals = collect.finals
    return trace


# Optuna on the same table ------------------------------------------------------------------------------

def run_optuna(pruner_name: str, seed: int, workload_path: str, workers: int, budget: float) -> Trace:
    """Optuna's TPE with a pruner on the simulated table: N virtual workers, ask/tell, virtual clock."""
    import heapq

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workload = Workload.load(workload_path)
    max_t = workload.max_epochs
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=ETA)
              if pruner_name == "sha" else
              optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_t, reduction_factor=ETA))
    study = optuna.create_study(direction="minimize" if workload.mode == "min" else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    trace = Trace(f"optuna-{pruner_name}", seed)
    started = time.perf_counter()
    heap: list[tuple[float, int, Any, int, int]] = []  # (time, order, trial, table index, epoch)
    order = 0

    def start(now: float) -> None:
        nonlocal order
        trial = study.ask()
        config = {}
        for key, spec in workload.space_spec.items():
            if spec["type"] == "float":
                config[key] = trial.suggest_float(key, spec["low"], spec["high"], log=bool(spec.get("log")))
            elif spec["type"] == "int":
                config[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
            else:
                config[key] = trial.suggest_categorical(key, spec["values"])
        index = workload.nearest(config)
        order += 1
        heapq.heappush(heap, (now + workload.epoch_time_s[index, 0], order, trial, index, 0))
        trace.trials += 1

    for _ in range(workers):
        start(0.0)
    while heap:
        now, _, trial, index, epoch = heapq.heappop(heap)
        if now > budget:
            break
        value = float(workload.curves[workload.metric][index, epoch])
        trace.times.append(now)
        trace.values.append(value)
        trial.report(value, epoch + 1)
        if epoch + 1 >= max_t:
            study.tell(trial, value)
            start(now)
        elif trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            start(now)
        else:
            order += 1
            heapq.heappush(heap, (now + workload.epoch_time_s[index, epoch + 1], order, trial, index, epoch + 1))
    trace.wall_s = time.perf_counter() - started
    trace.results = len(trace.times)
    return trace


# Summaries -----------------------------------------------------------------------------------------------

def summarise(traces: dict[str, list[Trace]], labels: dict[str, str], budget: float, target: float, mode: str,
              unit: str) -> str:
    rows = ["| method | best @25% | best @50% | best @100% | time to target | trials | wall s/run | µs/result |",
            "|---|---|---|---|---|---|---|---|"]
    for method, runs in traces.items():
        cells = [labels.get(method, method)]
        for fraction in (0.25, 0.5, 1.0):
            values = np.array([r.best_by(fraction * budget, mode) for r in runs])
            cells.append(_mean_sd(values))
        times = np.array([r.time_to(target, mode) for r in runs])
        reached = np.isfinite(times)
        cells.append(f"{np.median(times):.3g} {unit} ({reached.sum()}/{len(runs)})" if reached.sum() * 2 > len(runs)
                     else f"not reached ({reached.sum()}/{len(runs)})")
        cells.append(f"{np.mean([r.trials for r in runs]):.0f}")
        cells.append(f"{np.mean([r.wall_s for r in runs]):.1f}")
        results = sum(r.results for r in runs)
        cells.append(f"{1e6 * sum(r.wall_s for r in runs) / results:.0f}" if results else "-")
        errors = {r.error for r in runs if r.error}
        if errors:
            cells[0] += f" (failed: {'; '.join(sorted(errors))[:80]})"
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _mean_sd(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "-"
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def plot(traces: dict[str, list[Trace]], labels: dict[str, str], budget: float, mode: str, title: str,
         path: str, unit: str, worst_shown: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget, 200)[1:]
    fig, ax = plt.subplots(figsize=(8, 5))
    for method, runs in traces.items():
        curves = np.array([[r.best_by(t, mode) for t in grid] for r in runs])
        if np.all(np.isnan(curves)):
            continue
        with warnings.catch_warnings():  # before a seed's first result its curve is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            middle = np.nanmedian(curves, axis=0)
            low, high = np.nanpercentile(curves, 25, axis=0), np.nanpercentile(curves, 75, axis=0)
        line, = ax.plot(grid, middle, label=labels.get(method, method), linewidth=1.6)
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel(f"best {title.split(':')[-1].strip()} so far (median, band 25-75% of seeds)")
    if mode == "min":
        ax.set_yscale("log")
        if worst_shown is not None:
            ax.set_ylim(top=worst_shown)
    elif worst_shown is not None:
        ax.set_ylim(bottom=worst_shown)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_all(jobs: list[tuple], processes: int) -> list[Trace]:
    if processes <= 1:
        return [job[0](*job[1:]) for job in jobs]
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(*job) for job in jobs]
        return [f.result() for f in futures]


def main(argv: list[str] | None = None) -> dict[str, list[Trace]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD, help="a workload file (benchmarks/workloads)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget", type=float, help="seconds (default: 20 mean full trainings over the workers)")
    parser.add_argument("--target", type=float, help="value to reach (default: the 2%% best final value of the table)")
    parser.add_argument("--real", action="store_true", help="train for real on this machine's local executor")
    parser.add_argument("--max-t", type=int, help="epochs per trial (default: the table's)")
    parser.add_argument("--overhead-s", type=float, default=0.0,
                        help="virtual seconds each trial start or resume costs (simulated; a real start-up cost)")
    parser.add_argument("--pbt-population", type=int, default=16, help="P of the PBT-vs-random table (0: skip)")
    parser.add_argument("--optuna", action="store_true", help="add Optuna TPE + SHA / Hyperband pruners")
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1), help="runs at once (simulated)")
    parser.add_argument("--plot", help="write the plot here (.png)")
    parser.add_argument("--save", help="write every run's trace here (.json), to summarise or plot again later")
    parser.add_argument("--load", nargs="*", default=[], help="summarise saved traces (.json) with these runs")
    args = parser.parse_args(argv)

    workload = Workload.load(args.workload)
    max_t = args.max_t or workload.max_epochs
    full_training_s = float(workload.epoch_time_s[:, :max_t].sum(axis=1).mean())
    budget = args.budget or 20 * full_training_s / args.workers
    finals = workload.curves[workload.metric][:, max_t - 1]
    target = args.target if args.target is not None else float(np.quantile(finals, 0.02 if workload.mode == "min" else 0.98))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    unit = "s" if args.real else "virtual s"
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    processes = 1 if args.real else args.processes
    print(f"# {workload.name}: {'real training' if args.real else 'simulated'}, {args.workers} workers, "
          f"budget {budget:.3g} {unit}, {args.seeds} seeds, metric {workload.metric} ({workload.mode}), "
          f"target {target:.4g}\n")
    print(f"Table: {workload}; mean full training {full_training_s:.3g} s; best value in the table "
          f"{workload.best_value(epochs=max_t):.4g}\n")

    jobs = [(run_one, m, seed, args.workload, args.workers, budget, args.real, max_t, None, args.overhead_s)
            for m in methods for seed in seeds]
    if args.optuna and not args.real:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("optuna is not installed: skipping it (pip install optuna)\n")
        else:
            jobs += [(run_optuna, p, seed, args.workload, args.workers, budget) for p in ("sha", "hyperband")
                     for seed in seeds]
    started = time.perf_counter()
    traces: dict[str, list[Trace]] = {}
    loaded = [Trace(**{"results": len(row["times"]), **row}) for path in args.load for row in json.load(open(path))]
    done = {(t.method, t.seed) for t in loaded}
    jobs = [job for job in jobs if (job[1], job[2]) not in done] if args.load else jobs
    for trace in loaded + run_all(jobs, processes):
        traces.setdefault(trace.method, []).append(trace)
    if args.save:
        with open(args.save, "w") as f:
            json.dump([vars(t) for runs in traces.values() for t in runs], f)
    labels = {k: v[0] for k, v in METHODS.items()}
    labels.update({"optuna-sha": "Optuna TPE + SuccessiveHalving", "optuna-hyperband": "Optuna TPE + Hyperband"})
    print(summarise(traces, labels, budget, target, workload.mode, unit))
    print(f"\n({time.perf_counter() - started:.0f} s for {len(jobs)} runs)\n")
    if args.plot:
        title = f"{workload.name}, {args.workers} workers, {args.seeds} seeds: {workload.metric}"
        plot(traces, labels, budget, workload.mode, title, args.plot, unit, worst_shown=float(np.median(finals)))
        print(f"plot: {args.plot}\n")

    if args.pbt_population and "pbt" in methods:
        population = args.pbt_population
        equal = [(run_one, m, seed, args.workload, population, math.inf, args.real, max_t, population, args.overhead_s)
                 for m in ("pbt-population", "fifo") for seed in seeds]
        runs: dict[str, list[Trace]] = {}
        for trace in run_all(equal, processes):
            runs.setdefault("pbt" if trace.method == "pbt-population" else trace.method, []).append(trace)
        print(f"PBT against random search at equal compute: {population} configs x {max_t} epochs, "
              f"{population} workers, {len(seeds)} seeds. Final models: the {workload.metric} of each trial at "
              f"epoch {max_t}; best ever: the best result at any epoch.\n")
        print("| method | best final model | median final model | best ever |\n|---|---|---|---|")
        better = {"min": np.less, "max": np.greater}[workload.mode]
        pick = np.min if workload.mode == "min" else np.max
        summary = {}
        for method, label in (("pbt", f"PBT, population {population}"), ("fifo", f"random search, {population} configs")):
            best_final = np.array([pick(r.finals) if r.finals else math.nan for r in runs[method]])
            median_final = np.array([np.median(r.finals) if r.finals else math.nan for r in runs[method]])
            ever = np.array([r.best_by(math.inf, workload.mode) for r in runs[method]])
            summary[method] = best_final, median_final
            print(f"| {label} | {_mean_sd(best_final)} | {_mean_sd(median_final)} | {_mean_sd(ever)} |")
        wins_best = int(better(summary["pbt"][0], summary["fifo"][0]).sum())
        ties_best = int((summary["pbt"][0] == summary["fifo"][0]).sum())
        wins_median = int(better(summary["pbt"][1], summary["fifo"][1]).sum())
        print(f"\nPBT's best final model better on {wins_best} of {len(seeds)} seeds (tied on {ties_best}); "
              f"its median final model better on {wins_median} of {len(seeds)}.\n")
    return traces


if __name__ == "__main__":
    main()
