"""Search quality with several trials at once: TPESearch against Optuna's TPE with a constant liar.

Four simulated workers, asynchronous: four trials are always in flight; each evaluation takes a
random time (exponential, mean 1, the same draws for every method under one seed), so results
come back out of order. When one ends, the searcher is told and asked for the next config. A
searcher that ignored the running trials would propose the same region four times.

Methods (each with the problem definitions of benchmarks/search_quality.py):
  TPESearch x4         TPESearch(seed=s) with 4 workers (its default treatment of running trials)
  optuna-tpe-cl x4     study.ask()/study.tell() with TPESampler(seed=s, constant_liar=True) and up
                       to 4 trials asked but not yet told
  TPESearch, optuna-tpe-cl   the same, one worker (the sequential reference)
  TPESearch[...] x4    variants of TPESearch's arguments, for choosing how it treats running trials

Figure: simple regret after b evaluations = the best of the first b configs asked, minus the
known minimum. The first b asks of a run do not depend on its budget (each ask follows only
from what ended before it), so a run of 100 gives the 25- and 50-evaluation figures too: they
are what a run of 25 (50) would report once all its trials had ended.

Raw traces are cached in benchmarks/results/search_quality_parallel.json (values in ask order);
a run adds only what the cache lacks, `--rerun` recomputes the selected methods.

    python benchmarks/search_quality_parallel.py --seeds 20
    python benchmarks/search_quality_parallel.py --seeds 20 --methods "TPESearch[liar=off] x4"
    python benchmarks/search_quality_parallel.py --table-only --seeds 20
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from search_quality import (  # noqa: E402
    DEFAULT_PROBLEMS, PROBLEMS, asynctune_space, cache_key, load_cache, optuna_config, regrets, save_cache, summarise,
)

from asynctune.algorithms.search.tpe import TPESearch  # noqa: E402
from asynctune.core.space import Space  # noqa: E402

WORKERS = 4
Ask = Callable[[int], dict[str, Any]]  # ask(k) -> the k-th config
Tell = Callable[[int, float], None]  # tell(k, value)

# TPESearch's arguments per variant (the name between the brackets).
TPE_VARIANTS: dict[str, dict[str, Any]] = {
    "": {},
    "liar": {"constant_liar": True},
}


def durations(seed: int, budget: int) -> np.ndarray:
    """How long each of the `budget` evaluations takes, in ask order; the same for every method."""
    return np.random.default_rng([seed, 33]).exponential(1.0, budget)


def simulate(ask: Ask, tell: Tell, objective: Callable[[dict], float], budget: int, workers: int,
             seconds: np.ndarray) -> list[float]:
    """Keep `workers` evaluations in flight on a virtual clock; returns the values in ask order."""
    values: list[float] = []
    in_flight: list[tuple[float, int]] = []  # (end time, ask index)
    now = 0.0
    while len(values) < budget or in_flight:
        while len(values) < budget and len(in_flight) < workers:
            k = len(values)
            values.append(float(objective(ask(k))))
            heapq.heappush(in_flight, (now + seconds[k], k))
        now, k = heapq.heappop(in_flight)
        tell(k, values[k])
    return values


def asynctune_protocol(searcher: TPESearch, spec: list, budget: int, seed: int) -> tuple[Ask, Tell]:
    searcher.set_search_properties("loss", "min", Space(asynctune_space(spec)), seed=seed)
    searcher.max_trials(budget)
    return (lambda k: searcher.suggest(str(k)),
            lambda k, value: searcher.on_trial_complete(str(k), {"loss": value}))


def optuna_protocol(spec: list, seed: int) -> tuple[Ask, Tell]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    asked: dict[int, Any] = {}

    def ask(k: int) -> dict[str, Any]:
        asked[k] = study.ask()
        return optuna_config(asked[k], spec)

    return ask, lambda k, value: study.tell(asked.pop(k), value)


def parse_method(method: str) -> tuple[str, dict[str, Any], int]:
    """'TPESearch[variant] x4' -> ("TPESearch", the variant's arguments, 4 workers)."""
    name, _, workers = method.partition(" x")
    if name.startswith("TPESearch"):
        variant = name[len("TPESearch"):].strip("[]")
        return "TPESearch", TPE_VARIANTS[variant], int(workers or 1)
    return name, {}, int(workers or 1)


def method_names(workers: int = WORKERS) -> list[str]:
    tpe = [f"TPESearch[{v}]" if v else "TPESearch" for v in TPE_VARIANTS]
    return ["TPESearch", "optuna-tpe-cl", *(f"{m} x{workers}" for m in [*tpe, "optuna-tpe-cl"])]


def one_run(job: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    problem, method, seed, budget = job
    spec, objective, _ = PROBLEMS[problem]
    name, kwargs, workers = parse_method(method)
    start = time.process_time()
    if name == "TPESearch":
        ask, tell = asynctune_protocol(TPESearch(seed=seed, **kwargs), spec, budget, seed)
    elif name == "optuna-tpe-cl":
        ask, tell = optuna_protocol(spec, seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    values = simulate(ask, tell, objective, budget, workers, durations(seed, budget))
    return problem, method, seed, values, time.process_time() - start


def ratio_table(cache: dict[str, dict[str, Any]], problems: list[str], mine: str, theirs: str,
                budgets: list[int], seeds: int) -> str:
    """A markdown table of median regret mine / theirs per problem and budget, on seeds 0..n-1."""
    lines = [f"\nmedian regret {mine} / {theirs} (< 1: {mine} better), seeds 0..{seeds - 1}",
             "| problem | " + " | ".join(f"{b} evals" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for problem in problems:
        cells = []
        for budget in budgets:
            a = regrets(cache, problem, mine, list(range(seeds)), budget)
            b = regrets(cache, problem, theirs, list(range(seeds)), budget)
            cells.append("-" if a is None or b is None else f"{np.median(a) / max(np.median(b), 1e-12):.2f}")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..n-1 (default 20)")
    parser.add_argument("--budgets", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--problems", nargs="*", default=DEFAULT_PROBLEMS, choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=method_names())
    parser.add_argument("--cache", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                        "results", "search_quality_parallel.json"))
    parser.add_argument("--rerun", action="store_true", help="recompute the selected methods' cached runs")
    parser.add_argument("--table-only", action="store_true", help="print the tables from the cache; run nothing")
    parser.add_argument("--workers", type=int, default=1, help="processes for independent runs (default 1)")
    args = parser.parse_args()
    for method in args.methods:
        parse_method(method)  # an unknown variant fails before any run
    budget = max(args.budgets)
    cache = load_cache(args.cache)
    if not args.table_only:
        jobs = [(problem, method, seed, budget) for problem in args.problems for method in args.methods
                for seed in range(args.seeds)
                if args.rerun or len(cache.get(cache_key(problem, method, seed), {"values": []})["values"]) < budget]
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            for problem, method, seed, values, cpu in pool.imap_unordered(one_run, jobs):
                cache = load_cache(args.cache)  # another run may have added to it meanwhile
                cache[cache_key(problem, method, seed)] = {"values": values, "cpu": cpu}
                save_cache(args.cache, cache)  # after every run: an interrupted run keeps what it did
                print(f"{problem} {method} seed {seed}: {cpu:.1f} CPU s", file=sys.stderr, flush=True)
        print(f"{len(jobs)} runs in {time.perf_counter() - start:.0f} s wall", file=sys.stderr)
    methods = [m for m in args.methods if any(key.split("|")[1] == m for key in cache)]
    problems = [p for p in args.problems if any(key.startswith(p + "|") for key in cache)]
    print(summarise(cache, problems, methods, args.budgets, args.seeds))
    print(ratio_table(cache, problems, f"TPESearch x{WORKERS}", f"optuna-tpe-cl x{WORKERS}", args.budgets, args.seeds))
    for method in methods:
        if method.startswith("TPESearch[") and method.endswith(f" x{WORKERS}"):
            print(ratio_table(cache, problems, method, f"optuna-tpe-cl x{WORKERS}", args.budgets, args.seeds))


if __name__ == "__main__":
    main()
