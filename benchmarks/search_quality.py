"""How good are the configs the searchers find, early and late? Anytime simple regret.

Each searcher is driven directly in a sequential loop (suggest -> evaluate -> on_trial_complete),
so this measures search quality, not the executor. For every problem, method and seed it runs
the largest budget once and reads the smaller budgets off the same run (a sequential search's
first 25 evaluations do not depend on whether it will be given 100).

Methods: random search, TPESearch, SkOptSearch, and when installed Optuna's TPESampler, hyperopt's
tpe.suggest and scikit-optimize's gp_minimize, each with its defaults and the same seeds.
Problems (regret = f(x) - the known minimum):
  branin      2 floats
  hartmann6   6 floats in [0, 1]
  levy4       4 floats in [-10, 10]: multimodal (a grid of local minima), minimum at (1, 1, 1, 1)
  rosenbrock  2 floats: a narrow curved valley, minimum 0 at (1, 1)
  mixed_trap  a choice of 4 kinds, 2 floats, a log-scale float and an integer: the kind "trap"
              is good nearly everywhere (regret 0.25-0.4), the kind "good" is bad nearly
              everywhere but holds the optimum (0) in a narrow basin; random early samples make
              "trap" look best.
  sgd_digits  scikit-learn SGDClassifier on load_digits (70/30 split, standardised): alpha and
              eta0 on a log scale, l1_ratio, max_iter (integer), loss and learning_rate
              (choices); the figure is the held-out error (the best possible is unknown).
              Not in the default set: one evaluation trains a model (~0.1 CPU s).

Raw traces (every evaluation's value, per problem/method/seed) are cached in a JSON file, so the
tables are regenerated without rerunning, and a run adds only what the cache lacks. After a change
to TPESearch or SkOptSearch, `--rerun` them; `--tag before` stores asynctune's searchers under
"TPESearch [before]" etc., so two versions share a table.

Also prints how long TPESearch.suggest takes with 100 observations.

    python benchmarks/search_quality.py --seeds 20 --methods TPESearch optuna-tpe hyperopt-tpe random
    python benchmarks/search_quality.py --seeds 120 --methods TPESearch optuna-tpe \
        --cache benchmarks/results/search_quality_heldout.json   # more seeds: medians of 20 move a lot
    python benchmarks/search_quality.py --seeds 5 --budgets 25 50 --problems rosenbrock mixed_trap \
        --methods gp_minimize SkOptSearch --cache benchmarks/results/search_quality_gp.json
    python benchmarks/search_quality.py --table-only --seeds 20      # tables from the cache
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asynctune.algorithms.base import Searcher  # noqa: E402
from asynctune.algorithms.search.basic import RandomSearch  # noqa: E402
from asynctune.algorithms.search.skopt_search import SkOptSearch  # noqa: E402
from asynctune.algorithms.search.tpe import TPESearch  # noqa: E402
from asynctune.core.space import Space, choice, loguniform, randint, uniform  # noqa: E402

# --- problems: a spec every library can read, an objective, the best value --------------------
# A spec is a list of (name, kind, args): kind "float" (low, high, log) | "int" (low, high incl.) |
# "cat" (categories).


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


_DIGITS: tuple | None = None


def sgd_digits(c: dict[str, Any]) -> float:
    global _DIGITS
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    if _DIGITS is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(x_train)
        _DIGITS = scaler.transform(x_train), scaler.transform(x_test), y_train, y_test
    x_train, x_test, y_train, y_test = _DIGITS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SGDClassifier(loss=c["loss"], penalty="elasticnet", alpha=c["alpha"], l1_ratio=c["l1_ratio"],
                              learning_rate=c["learning_rate"], eta0=c["eta0"], max_iter=c["max_iter"],
                              tol=None, random_state=0).fit(x_train, y_train)
    return 1.0 - model.score(x_test, y_test)


def levy4(c: dict[str, Any]) -> float:
    w = 1 + (np.array([c[f"x{i}"] for i in range(4)]) - 1) / 4
    middle = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    return float(np.sin(np.pi * w[0]) ** 2 + middle + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def rosenbrock(c: dict[str, Any]) -> float:
    return (1 - c["x1"]) ** 2 + 100 * (c["x2"] - c["x1"] ** 2) ** 2


def mixed_trap(c: dict[str, Any]) -> float:
    x, y = c["x"], c["y"]
    # lr and n matter a little in every kind: optimum at lr = 1e-2 and n = 20.
    penalty = 0.1 * ((math.log10(c["lr"]) + 2) / 3) ** 2 + 0.05 * abs(c["n"] - 20) / 44
    kind = c["kind"]
    if kind == "trap":  # good nearly everywhere, never below 0.25
        base = 0.25 + 0.15 * ((x - 0.3) ** 2 + (y - 0.6) ** 2)
    elif kind == "good":  # worse than "trap" at 9 random points in 10; the optimum (0) in a basin
        base = 1.0 - math.exp(-((x - 0.75) ** 2 + (y - 0.25) ** 2) / (2 * 0.2**2))
    elif kind == "flat":
        base = 0.6 + 0.1 * x
    else:
        base = 0.9 + 0.1 * y
    return base + penalty


PROBLEMS: dict[str, tuple[list, Callable[[dict], float], float]] = {
    "branin": ([("x1", "float", (-5.0, 10.0, False)), ("x2", "float", (0.0, 15.0, False))], branin, 0.397887),
    "hartmann6": ([(f"x{i}", "float", (0.0, 1.0, False)) for i in range(6)], hartmann6, -3.32237),
    "levy4": ([(f"x{i}", "float", (-10.0, 10.0, False)) for i in range(4)], levy4, 0.0),
    "rosenbrock": ([("x1", "float", (-2.0, 2.0, False)), ("x2", "float", (-1.0, 3.0, False))], rosenbrock, 0.0),
    "mixed_trap": ([("kind", "cat", ["trap", "flat", "good", "bad"]), ("x", "float", (0.0, 1.0, False)),
                    ("y", "float", (0.0, 1.0, False)), ("lr", "float", (1e-5, 1.0, True)), ("n", "int", (1, 64))],
                   mixed_trap, 0.0),
    "sgd_digits": ([("alpha", "float", (1e-7, 1e-1, True)), ("l1_ratio", "float", (0.0, 1.0, False)),
                    ("eta0", "float", (1e-4, 1.0, True)), ("max_iter", "int", (5, 30)),
                    ("loss", "cat", ["hinge", "log_loss", "modified_huber"]),
                    ("learning_rate", "cat", ["optimal", "constant", "invscaling", "adaptive"])],
                   sgd_digits, 0.0),
}
DEFAULT_PROBLEMS = ["branin", "hartmann6", "levy4", "rosenbrock", "mixed_trap"]


def asynctune_space(spec: list) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, args in spec:
        if kind == "float":
            low, high, log = args
            out[name] = loguniform(low, high) if log else uniform(low, high)
        elif kind == "int":
            out[name] = randint(args[0], args[1] + 1)
        else:
            out[name] = choice(args)
    return out


# --- methods: each returns the objective value of every evaluation, in order ------------------

def run_asynctune(searcher: Searcher, spec: list, objective: Callable, budget: int, seed: int) -> list[float]:
    searcher.set_search_properties("loss", "min", Space(asynctune_space(spec)), seed=seed)
    searcher.max_trials(budget)
    values = []
    for i in range(budget):
        config = searcher.suggest(str(i))
        value = objective(config)
        searcher.on_trial_complete(str(i), {"loss": value})
        values.append(value)
    return values


def optuna_config(trial: Any, spec: list) -> dict[str, Any]:
    """The config of a spec, suggested by an Optuna trial."""
    config = {}
    for name, kind, args in spec:
        if kind == "float":
            config[name] = trial.suggest_float(name, args[0], args[1], log=args[2])
        elif kind == "int":
            config[name] = trial.suggest_int(name, args[0], args[1])
        else:
            config[name] = trial.suggest_categorical(name, args)
    return config


def run_optuna(spec: list, objective: Callable, budget: int, seed: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(lambda trial: objective(optuna_config(trial, spec)), n_trials=budget)
    return [t.value for t in study.trials]


def run_hyperopt(spec: list, objective: Callable, budget: int, seed: int) -> list[float]:
    from hyperopt import Trials, fmin, hp, tpe

    space = {}
    for name, kind, args in spec:
        if kind == "float":
            space[name] = hp.loguniform(name, math.log(args[0]), math.log(args[1])) if args[2] \
                else hp.uniform(name, args[0], args[1])
        elif kind == "int":
            space[name] = hp.uniformint(name, args[0], args[1])
        else:
            space[name] = hp.choice(name, args)
    integers = [name for name, kind, _ in spec if kind == "int"]
    trials = Trials()
    fmin(lambda c: objective({**c, **{k: int(c[k]) for k in integers}}), space, algo=tpe.suggest,
         max_evals=budget, trials=trials, rstate=np.random.default_rng(seed), show_progressbar=False)
    return [t["result"]["loss"] for t in trials.trials]


def run_gp_minimize(spec: list, objective: Callable, budget: int, seed: int) -> list[float]:
    from skopt import gp_minimize
    from skopt.space import Categorical, Integer, Real

    dimensions = []
    for name, kind, args in spec:
        if kind == "float":
            dimensions.append(Real(args[0], args[1], prior="log-uniform" if args[2] else "uniform", name=name))
        elif kind == "int":
            dimensions.append(Integer(args[0], args[1], name=name))
        else:
            dimensions.append(Categorical(args, name=name))
    names = [name for name, _, _ in spec]
    values: list[float] = []

    def f(x: list) -> float:
        config = {name: (v.item() if isinstance(v, np.generic) else v) for name, v in zip(names, x)}
        values.append(objective(config))
        return values[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "objective has been evaluated at this point before"
        gp_minimize(f, dimensions, n_calls=budget, random_state=seed)
    return values


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


ASYNCTUNE: dict[str, Callable[[int], Searcher]] = {
    "random": lambda s: RandomSearch(seed=s),
    "TPESearch": lambda s: TPESearch(seed=s),
    "SkOptSearch": lambda s: SkOptSearch(seed=s),
}
METHODS: dict[str, Callable[[list, Callable, int, int], list[float]]] = {
    name: (lambda make: lambda spec, f, n, s: run_asynctune(make(s), spec, f, n, s))(make)
    for name, make in ASYNCTUNE.items()
}
if _installed("optuna"):
    METHODS["optuna-tpe"] = run_optuna
if _installed("hyperopt"):
    METHODS["hyperopt-tpe"] = run_hyperopt
if _installed("skopt"):
    METHODS["gp_minimize"] = run_gp_minimize


def one_run(job: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    problem, method, seed, budget = job
    spec, objective, _ = PROBLEMS[problem]
    start = time.process_time()  # CPU seconds: fair on a machine shared with other work
    values = METHODS[method](spec, objective, budget, seed)
    return problem, method, seed, [float(v) for v in values], time.process_time() - start


# --- the cache of raw traces --------------------------------------------------------------------

def load_cache(path: str) -> dict[str, dict[str, Any]]:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def save_cache(path: str, cache: dict[str, dict[str, Any]]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "w") as f:  # one run per line, values to 6 significant digits
        f.write("{\n" + ",\n".join(
            f"{json.dumps(key)}: " + json.dumps({"cpu": round(run["cpu"], 2),
                                                "values": [float(f"{v:.6g}") for v in run["values"]]})
            for key, run in sorted(cache.items())) + "\n}\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # an interrupted run keeps the previous cache


def cache_key(problem: str, method: str, seed: int) -> str:
    return f"{problem}|{method}|{seed}"


# --- reporting ----------------------------------------------------------------------------------

def regrets(cache: dict[str, dict[str, Any]], problem: str, method: str, seeds: list[int], budget: int
            ) -> np.ndarray | None:
    best = PROBLEMS[problem][2]
    traces = [cache.get(cache_key(problem, method, s)) for s in seeds]
    if any(t is None or len(t["values"]) < budget for t in traces):
        return None
    return np.array([min(t["values"][:budget]) - best for t in traces])


def summarise(cache: dict[str, dict[str, Any]], problems: list[str], methods: list[str], budgets: list[int],
              seeds: int) -> str:
    """One table per problem: the median [25%, 75%] regret at each budget, over the first `seeds` seeds.

    A method appears with the seeds it has: fewer than asked when the cache holds fewer (the GP
    runs); its seed count is in the row.
    """
    lines = []
    for problem in problems:
        figure = "held-out error" if problem == "sgd_digits" else "simple regret"
        lines.append(f"\n{problem}: {figure}, median [25%, 75%] over seeds 0..n-1")
        header = f"| {'method':<22} | {'n':>2} | " + " | ".join(f"{f'{b} evaluations':<26}" for b in budgets) \
            + " | CPU s/run |"
        lines += [header, "|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|"]
        for method in methods:
            have = [s for s in range(seeds) if cache_key(problem, method, s) in cache]
            n = 0
            while n < len(have) and have[n] == n:
                n += 1  # the seeds 0..n-1, so that methods compare on the same seeds
            if n == 0:
                continue
            cells = []
            for budget in budgets:
                r = regrets(cache, problem, method, list(range(n)), budget)
                if r is None:
                    cells.append("-".ljust(26))
                    continue
                q1, med, q3 = np.percentile(r, [25, 50, 75])
                cells.append(f"{med:<8.3g} [{q1:.3g}, {q3:.3g}]".ljust(26))
            seconds = np.mean([cache[cache_key(problem, method, s)]["cpu"] for s in range(n)])
            lines.append(f"| {method:<22} | {n:>2} | " + " | ".join(cells) + f" | {seconds:>9.1f} |")
    return "\n".join(lines)


def ratios(cache: dict[str, dict[str, Any]], problems: list[str], mine: str, theirs: str, budgets: list[int],
           seeds: int) -> str:
    """median regret of `mine` / median regret of `theirs`, on the seeds both have."""
    lines = [f"\nmedian regret {mine} / {theirs} (same seeds; < 1: {mine} better)"]
    for problem in problems:
        both = [s for s in range(seeds) if cache_key(problem, mine, s) in cache and cache_key(problem, theirs, s) in cache]
        cells = []
        for budget in budgets:
            a, b = regrets(cache, problem, mine, both, budget), regrets(cache, problem, theirs, both, budget)
            if not both or a is None or b is None:
                cells.append("-")
                continue
            cells.append(f"{np.median(a) / max(np.median(b), 1e-12):.2f}")
        lines.append(f"  {problem:<12} ({len(both)} seeds): " + "  ".join(f"{b}: {c}" for b, c in zip(budgets, cells)))
    return "\n".join(lines)


def tpe_suggest_time(problem: str = "hartmann6", observations: int = 100, repeats: int = 20) -> float:
    """Median CPU seconds of one TPESearch.suggest with `observations` finished trials."""
    spec, objective, _ = PROBLEMS[problem]
    searcher = TPESearch(seed=0)
    searcher.set_search_properties("loss", "min", Space(asynctune_space(spec)))
    for i in range(observations):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": objective(config)})
    times = []
    for i in range(repeats):
        start = time.process_time()
        searcher.suggest(f"t{i}")
        times.append(time.process_time() - start)
        searcher.on_trial_complete(f"t{i}", None, error=True)  # keep the model at `observations`
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..n-1 (default 10)")
    parser.add_argument("--budgets", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--problems", nargs="*", default=DEFAULT_PROBLEMS, choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--cache", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                        "results", "search_quality.json"))
    parser.add_argument("--rerun", action="store_true", help="recompute the selected methods' cached runs")
    parser.add_argument("--tag", default="", help="store asynctune's searchers as 'NAME [TAG]'")
    parser.add_argument("--table-only", action="store_true", help="print the tables from the cache; run nothing")
    parser.add_argument("--workers", type=int, default=1, help="processes for independent runs (default 1)")
    args = parser.parse_args()
    budget = max(args.budgets)
    cache = load_cache(args.cache)

    def stored(method: str) -> str:
        return f"{method} [{args.tag}]" if args.tag and method in ASYNCTUNE else method

    if not args.table_only:
        jobs = [(problem, method, seed, budget) for problem in args.problems for method in args.methods
                for seed in range(args.seeds)
                if args.rerun or len(cache.get(cache_key(problem, stored(method), seed), {"values": []})["values"]) < budget]
        jobs.sort(key=lambda j: j[1] not in ("SkOptSearch", "gp_minimize"))  # the slowest first
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            for problem, method, seed, values, cpu in pool.imap_unordered(one_run, jobs):
                key, entry = cache_key(problem, stored(method), seed), {"values": values, "cpu": cpu}
                cache = load_cache(args.cache)  # another run may have added to it meanwhile
                cache[key] = entry
                save_cache(args.cache, cache)  # after every run: an interrupted run keeps what it did
                print(f"{problem} {stored(method)} seed {seed}: {cpu:.1f} CPU s", file=sys.stderr, flush=True)
        print(f"{len(jobs)} runs in {time.perf_counter() - start:.0f} s wall", file=sys.stderr)
    order = list(METHODS)
    methods = sorted({key.split("|")[1] for key in cache})
    methods.sort(key=lambda m: (order.index(m.split(" [")[0]) if m.split(" [")[0] in order else len(order), m))
    problems = [p for p in PROBLEMS if any(key.startswith(p + "|") for key in cache)]
    print(summarise(cache, problems, methods, args.budgets, args.seeds))
    for mine, theirs in [("TPESearch", "optuna-tpe"), ("SkOptSearch", "gp_minimize")]:
        print(ratios(cache, problems, mine, theirs, args.budgets, args.seeds))
    for problem in ("hartmann6", "mixed_trap"):
        print(f"\nTPESearch.suggest with 100 observations ({problem}): "
              f"{tpe_suggest_time(problem) * 1000:.1f} CPU ms (median of 20)")


if __name__ == "__main__":
    main()
