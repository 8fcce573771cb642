"""The command line: run what the cache lacks, print the tables, optionally write them into the docs."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

import numpy as np

from asynctune.algorithms.search.tpe import TPESearch
from asynctune.core.space import Space

from . import __doc__ as ABOUT
from .peers import ASYNCTUNE, METHODS, asynctune_space
from .problems import HELDOUT, PROBLEMS, TUNING
from .tables import MINE, loss_summary, pair_table, regret_table, replace_between_markers
from .traces import Trace, cache_key, evaluations, load_cache, one_run, save_cache

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
SUITE_CACHE = os.path.join(RESULTS, "search_quality.json")
GP_CACHE = os.path.join(RESULTS, "search_quality_gp.json")
SUITE_METHODS = ["random", "TPESearch", "optuna-tpe", "hyperopt-tpe"]
GP_METHODS = ["SkOptSearch", "gp_minimize"]
# Rewriting the whole cache after every run made the driver the bottleneck once it held 100 seeds.
SAVE_EVERY_S = 10.0


def suggest_time(problem: str, observations: int, repeats: int = 20) -> float:
    """Median CPU seconds of one TPESearch.suggest with `observations` finished trials (random
    configs, so that filling 1,000 costs little; the model's cost depends on their number)."""
    spec = PROBLEMS[problem]
    searcher = TPESearch(seed=0, n_startup_trials=observations)
    searcher.set_search_properties("loss", "min", Space(asynctune_space(spec.space)))
    evaluate = spec.objective(0)
    for i in range(observations):
        searcher.on_trial_complete(str(i), {"loss": evaluate(searcher.suggest(str(i)))[0]})
    times = []
    for i in range(repeats):
        start = time.process_time()
        searcher.suggest(f"t{i}")
        times.append(time.process_time() - start)
        searcher.on_trial_complete(f"t{i}", None, error=True)  # keep the model at `observations`
    return float(np.median(times))


def timing_table(markdown: bool) -> str:
    rows = [(problem, n, suggest_time(problem, n) * 1000) for problem in ("hartmann6", "mixed_interact")
            for n in (100, 1000)]
    if markdown:
        return "\n".join(["| space | observations | median CPU ms per suggest |", "|---|---|---|"]
                         + [f"| {p} | {n} | {ms:.1f} |" for p, n, ms in rows])
    return "\n".join(f"TPESearch.suggest, {p}, {n} observations: {ms:.1f} CPU ms (median of 20)" for p, n, ms in rows)


def run_missing(cache_path: str, problems: list[str], methods: list[str], seeds: int, budget: int,
                rerun: bool, tag: str, workers: int) -> None:
    cache = load_cache(cache_path)

    def stored(method: str) -> str:
        return f"{method} [{tag}]" if tag and method in ASYNCTUNE else method

    jobs = [(problem, method, seed, budget) for problem in problems for method in methods for seed in range(seeds)
            if rerun or evaluations(cache.get(cache_key(problem, stored(method), seed), {})) < budget]
    jobs.sort(key=lambda j: (j[1] not in GP_METHODS, j[2]))  # the slowest first, seed by seed
    start = saved = time.perf_counter()
    done: dict[str, Trace] = {}

    def save() -> None:
        merged = load_cache(cache_path)  # another run may have added to it meanwhile
        merged.update(done)
        save_cache(cache_path, merged)

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for problem, method, seed, trace in pool.imap_unordered(one_run, jobs):
            done[cache_key(problem, stored(method), seed)] = trace
            print(f"{problem} {stored(method)} seed {seed}: {trace['cpu']:.1f} CPU s", file=sys.stderr, flush=True)
            if time.perf_counter() - saved > SAVE_EVERY_S:  # an interrupted run keeps nearly all it did
                save()
                saved = time.perf_counter()
    if done:
        save()
    print(f"{len(jobs)} runs in {time.perf_counter() - start:.0f} s wall", file=sys.stderr)


def cached_methods(cache: dict, wanted: list[str]) -> list[str]:
    present = {key.split("|")[1] for key in cache}
    tagged = sorted(m for m in present if " [" in m)
    return [m for m in wanted if m in present] + [m for m in tagged if m not in wanted]


def write_docs(path: str, seeds: int, budgets: list[int]) -> None:
    suite, gp = load_cache(SUITE_CACHE), load_cache(GP_CACHE)
    with open(path) as f:
        text = f.read()
    methods = cached_methods(suite, SUITE_METHODS)
    for half, problems in (("tuning", TUNING), ("heldout", HELDOUT)):
        body = regret_table(suite, problems, methods, budgets, seeds, markdown=True) + "\n\n" \
            + loss_summary(suite, problems, budgets, seeds).replace("\n", "\n\n")
        text = replace_between_markers(text, half, body)
    gp_problems = [p for p in PROBLEMS if any(k.startswith(p + "|") for k in gp)]
    text = replace_between_markers(text, "skopt", pair_table(gp, gp_problems, "SkOptSearch", "gp_minimize",
                                                             budgets, seeds, markdown=True))
    text = replace_between_markers(text, "timing", timing_table(markdown=True))
    with open(path, "w") as f:
        f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_quality", description=ABOUT,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100,
                        help="seeds 0..n-1 (default 100: medians of 20 seeds at 25 evaluations flip with the seed set)")
    parser.add_argument("--budgets", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--half", choices=["tuning", "heldout", "all"], default="all")
    parser.add_argument("--problems", nargs="*", choices=list(PROBLEMS), help="instead of --half")
    parser.add_argument("--methods", nargs="*", default=SUITE_METHODS, choices=list(METHODS))
    parser.add_argument("--cache", help=f"the trace cache (default {SUITE_CACHE}, or {GP_CACHE} for "
                                        f"{' and '.join(GP_METHODS)} alone)")
    parser.add_argument("--rerun", action="store_true", help="recompute the selected methods' cached runs")
    parser.add_argument("--tag", default="", help="store asynctune's searchers as 'NAME [TAG]'")
    parser.add_argument("--mine", default=MINE, help=f"the method the ratios are for (default {MINE}; "
                                                     f"e.g. 'TPESearch [TAG]')")
    parser.add_argument("--table-only", action="store_true", help="print the tables from the cache; run nothing")
    parser.add_argument("--workers", type=int, default=1, help="processes for independent runs (default 1)")
    parser.add_argument("--docs", metavar="PATH", help="write the markdown tables (both halves, SkOpt against "
                                                       "gp_minimize, suggestion time) between PATH's markers")
    parser.add_argument("--timing-only", action="store_true", help="print TPESearch.suggest's time; run nothing")
    args = parser.parse_args()
    if args.timing_only:
        print(timing_table(markdown=False))
        return
    halves = {"tuning": TUNING, "heldout": HELDOUT, "all": TUNING + HELDOUT}
    problems = args.problems or halves[args.half]
    cache_path = args.cache or (GP_CACHE if set(args.methods) <= set(GP_METHODS) else SUITE_CACHE)
    if not args.table_only:
        run_missing(cache_path, problems, args.methods, args.seeds, max(args.budgets), args.rerun, args.tag,
                    args.workers)
    cache = load_cache(cache_path)
    methods = cached_methods(cache, args.methods)
    for half, names in (("tuning", TUNING), ("heldout", HELDOUT), ("extra", [p for p in PROBLEMS if p not in
                                                                             TUNING + HELDOUT])):
        names = [p for p in names if p in problems]
        if not names:
            continue
        print(f"\n{half}: median simple regret over seeds 0..{args.seeds - 1}")
        if set(methods) - set(GP_METHODS):
            print(regret_table(cache, names, methods, args.budgets, args.seeds, mine=args.mine))
            print(loss_summary(cache, names, args.budgets, args.seeds, args.mine))
        if set(GP_METHODS) <= set(methods):
            print(pair_table(cache, names, "SkOptSearch", "gp_minimize", args.budgets, args.seeds))
    if args.docs:
        write_docs(args.docs, args.seeds, args.budgets)
        print(f"\nwrote the tables into {args.docs}", file=sys.stderr)
    elif not args.table_only:
        print("\n" + timing_table(markdown=False))


if __name__ == "__main__":
    main()
