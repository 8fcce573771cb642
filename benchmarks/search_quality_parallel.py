"""Search quality with four trials at once: TPESearch against Optuna's TPE with a constant liar.

Four simulated workers, asynchronous: four trials are always in flight, and each evaluation
takes a random time (exponential, mean 1; the same draws for every method under one seed), so
results come back out of order. When one ends, the searcher is told and asked for the next
config. A searcher that ignored the running trials would often propose the same region again.

Methods, on the problems of benchmarks/search_quality (both halves of its suite):
  TPESearch x4            TPESearch(seed=s) with 4 workers: its default treatment of running trials
  optuna-tpe-cl x4        study.ask() / study.tell() with TPESampler(seed=s, constant_liar=True), up
                          to 4 trials asked and not yet told
  TPESearch, optuna-tpe   the same searchers one trial at a time (the suite's own methods), for reference
  TPESearch[VARIANT] x4   TPESearch with other arguments (TPE_VARIANTS), e.g. "ignore" (running
                          trials are not shown to the model, constant_liar=False)

Figure: simple regret after b evaluations, of the config with the best value among the first b
configs asked (on a noisy problem, its noiseless regret). The first b asks of a run do not
depend on its budget (each follows only from what ended before it), so a run of 100 gives the
25- and 50-evaluation figures too: what a run of 25 (50) reports once all its trials ended.

Traces are cached in benchmarks/results/search_quality_parallel.json (the suite's format); a run
adds only what the cache lacks, `--rerun` recomputes the selected methods. From the repository root:

    python benchmarks/search_quality_parallel.py --workers 2            # 20 seeds, both halves
    python benchmarks/search_quality_parallel.py --methods "TPESearch[ignore] x4" --half tuning
    python benchmarks/search_quality_parallel.py --table-only
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asynctune.algorithms.search.tpe import TPESearch  # noqa: E402
from asynctune.core.space import Space  # noqa: E402
from benchmarks.search_quality.__main__ import RESULTS, run_missing  # noqa: E402
from benchmarks.search_quality.peers import METHODS, Evaluate, asynctune_space, optuna_config  # noqa: E402
from benchmarks.search_quality.problems import HELDOUT, TUNING, Config, Param  # noqa: E402
from benchmarks.search_quality.tables import (  # noqa: E402
    _number, _ratio_cell, _render, median, ratio, replace_between_markers,
)
from benchmarks.search_quality.traces import load_cache  # noqa: E402

WORKERS = 4
CACHE = os.path.join(RESULTS, "search_quality_parallel.json")
Ask = Callable[[int], Config]  # ask(k) -> the k-th config
Tell = Callable[[int, float], None]  # tell(k, the value the k-th config got)

# TPESearch's arguments per variant, "TPESearch[VARIANT] x4".
TPE_VARIANTS: dict[str, dict[str, Any]] = {
    "ignore": {"constant_liar": False},
    "joint": {"categories_first": False},
}


def durations(seed: int, budget: int) -> np.ndarray:
    """How long each of the `budget` evaluations takes, in ask order; the same for every method."""
    return np.random.default_rng([seed, 33]).exponential(1.0, budget)


def simulate(ask: Ask, tell: Tell, evaluate: Evaluate, budget: int, seed: int, workers: int = WORKERS) -> None:
    """Keep `workers` evaluations in flight on a virtual clock, each ending after its duration."""
    seconds = durations(seed, budget)
    values: list[float] = []
    in_flight: list[tuple[float, int]] = []  # (end time, ask index)
    now = 0.0
    while len(values) < budget or in_flight:
        while len(values) < budget and len(in_flight) < workers:
            k = len(values)
            values.append(evaluate(ask(k)))  # evaluated now, told when it ends
            heapq.heappush(in_flight, (now + seconds[k], k))
        now, k = heapq.heappop(in_flight)
        tell(k, values[k])


def run_tpe_parallel(kwargs: dict[str, Any], space: dict[str, Param], evaluate: Evaluate, budget: int,
                     seed: int) -> None:
    searcher = TPESearch(seed=seed, **kwargs)
    searcher.set_search_properties("loss", "min", Space(asynctune_space(space)), seed=seed)
    searcher.max_trials(budget)
    simulate(lambda k: searcher.suggest(str(k)),
             lambda k, value: searcher.on_trial_complete(str(k), {"loss": value}), evaluate, budget, seed)


def run_optuna_parallel(space: dict[str, Param], evaluate: Evaluate, budget: int, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    asked: dict[int, Any] = {}

    def ask(k: int) -> Config:
        asked[k] = study.ask()
        return optuna_config(asked[k], space)

    simulate(ask, lambda k, value: study.tell(asked.pop(k), value), evaluate, budget, seed)


def parallel_methods() -> dict[str, Callable[[dict[str, Param], Evaluate, int, int], None]]:
    out = {f"TPESearch x{WORKERS}": lambda *a: run_tpe_parallel({}, *a),
           f"optuna-tpe-cl x{WORKERS}": run_optuna_parallel}
    for variant, kwargs in TPE_VARIANTS.items():
        out[f"TPESearch[{variant}] x{WORKERS}"] = (lambda kw: lambda *a: run_tpe_parallel(kw, *a))(kwargs)
    return out


# The suite's runner looks methods up in METHODS; this module is imported again in each worker
# process (spawn), so they find these there too.
METHODS.update(parallel_methods())
MINE, THEIRS = f"TPESearch x{WORKERS}", f"optuna-tpe-cl x{WORKERS}"


def comparison_table(cache: dict, problems: list[str], budgets: list[int], seeds: int, variants: list[str]) -> str:
    """Markdown, one row per problem and budget: median regrets, parallel then sequential, and the
    ratios TPESearch / Optuna (bold where TPESearch is worse)."""
    columns = [MINE, THEIRS, *variants, "TPESearch", "optuna-tpe"]
    header = ["problem", "evals", *columns, f"{MINE} / {THEIRS}", *(f"{v} / {THEIRS}" for v in variants),
              "TPESearch / optuna-tpe"]
    pairs = [(MINE, THEIRS), *((v, THEIRS) for v in variants), ("TPESearch", "optuna-tpe")]
    rows = []
    for problem in problems:
        for budget in budgets:
            medians = {m: median(cache, problem, m, list(range(seeds)), budget) for m in columns}
            rows.append([problem, str(budget), *(_number(medians[m]) for m in columns),
                         *(_ratio_cell(ratio(medians[mine], medians[theirs]), True) for mine, theirs in pairs)])
    return _render(header, rows, markdown=True)


def wins(cache: dict, problems: list[str], budgets: list[int], seeds: int, mine: str, theirs: str) -> str:
    """How many (problem, budget) cells `mine` is at most `theirs`, and the geometric mean ratio."""
    ratios = [ratio(median(cache, p, mine, list(range(seeds)), b), median(cache, p, theirs, list(range(seeds)), b))
              for p in problems for b in budgets]
    known = [r for r in ratios if r is not None and 0 < r < float("inf")]
    if not known:
        return f"{mine} / {theirs}: no runs"
    return (f"{mine} / {theirs}: at most 1 in {sum(r <= 1 for r in known)} of {len(known)} cells, "
            f"geometric mean {float(np.exp(np.mean(np.log(known)))):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..n-1 (default 20)")
    parser.add_argument("--budgets", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--half", choices=["tuning", "heldout", "all"], default="all")
    parser.add_argument("--problems", nargs="*", help="instead of --half")
    parser.add_argument("--methods", nargs="*", default=[MINE, THEIRS, "TPESearch", "optuna-tpe"],
                        choices=list(METHODS))
    parser.add_argument("--cache", default=CACHE)
    parser.add_argument("--rerun", action="store_true", help="recompute the selected methods' cached runs")
    parser.add_argument("--table-only", action="store_true", help="print the tables from the cache; run nothing")
    parser.add_argument("--workers", type=int, default=1, help="processes for independent runs (default 1)")
    parser.add_argument("--docs", metavar="PATH", help="write the tables between PATH's search_quality:parallel markers")
    args = parser.parse_args()
    halves = {"tuning": TUNING, "heldout": HELDOUT, "all": TUNING + HELDOUT}
    problems = args.problems or halves[args.half]
    if not args.table_only:
        run_missing(args.cache, problems, args.methods, args.seeds, max(args.budgets), args.rerun, "", args.workers)
    cache = load_cache(args.cache)
    variants = sorted({key.split("|")[1] for key in cache if key.split("|")[1].startswith("TPESearch[")})
    report = []
    for half, names in (("tuning", TUNING), ("heldout", HELDOUT)):
        names = [p for p in names if p in problems]
        if names:
            report += [f"\n{half}: median simple regret over seeds 0..{args.seeds - 1}, {WORKERS} workers and one\n",
                       comparison_table(cache, names, args.budgets, args.seeds, variants), ""]
            report += [wins(cache, names, args.budgets, args.seeds, mine, theirs) + "\n"
                       for mine, theirs in [*((m, THEIRS) for m in [MINE, *variants]), ("TPESearch", "optuna-tpe")]]
    print("\n".join(report))
    if args.docs:
        with open(args.docs) as f:
            text = f.read()
        with open(args.docs, "w") as f:
            f.write(replace_between_markers(text, "parallel", "\n".join(report)))


if __name__ == "__main__":
    main()
