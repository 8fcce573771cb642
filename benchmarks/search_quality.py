"""How good are the configs the searchers find? Simple regret on Branin, Hartmann6 and a real model.

Each searcher is driven directly in a sequential loop (suggest -> evaluate -> on_trial_complete),
so this measures search quality, not the executor. For every problem, method and seed it runs
the largest budget once and reads the smaller budgets off the same run (a sequential search's
first 50 evaluations do not depend on whether it will be given 100).

Methods: random search, TPESearch, SkOptSearch (GP + EI), and when installed Optuna's
TPESampler and hyperopt's tpe.suggest, each with its defaults and the same seeds.
Problems:
  branin      2 floats, regret = f(x) - 0.397887
  hartmann6   6 floats in [0, 1], regret = f(x) + 3.32237
  sgd_digits  scikit-learn SGDClassifier on load_digits (70/30 split, standardised): alpha and
              eta0 on a log scale, l1_ratio, max_iter (integer), loss and learning_rate
              (choices); the figure is the held-out error (the best possible is unknown).

Also prints how long TPESearch.suggest takes with 200 observations (Hartmann6 space).

    python benchmarks/search_quality.py            # 10 seeds (5 for sgd_digits), budgets 50 and 100
    python benchmarks/search_quality.py --quick    # 3 seeds, budgets 20 and 40
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asynctune.algorithms.base import Searcher  # noqa: E402
from asynctune.algorithms.basic import RandomSearch  # noqa: E402
from asynctune.algorithms.skopt_search import SkOptSearch  # noqa: E402
from asynctune.algorithms.tpe import TPESearch  # noqa: E402
from asynctune.space import Space, choice, loguniform, randint, uniform  # noqa: E402

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


PROBLEMS: dict[str, tuple[list, Callable[[dict], float], float]] = {
    "branin": ([("x1", "float", (-5.0, 10.0, False)), ("x2", "float", (0.0, 15.0, False))], branin, 0.397887),
    "hartmann6": ([(f"x{i}", "float", (0.0, 1.0, False)) for i in range(6)], hartmann6, -3.32237),
    "sgd_digits": ([("alpha", "float", (1e-7, 1e-1, True)), ("l1_ratio", "float", (0.0, 1.0, False)),
                    ("eta0", "float", (1e-4, 1.0, True)), ("max_iter", "int", (5, 30)),
                    ("loss", "cat", ["hinge", "log_loss", "modified_huber"]),
                    ("learning_rate", "cat", ["optimal", "constant", "invscaling", "adaptive"])],
                   sgd_digits, 0.0),
}


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


def run_optuna(spec: list, objective: Callable, budget: int, seed: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def trial_objective(trial: Any) -> float:
        config = {}
        for name, kind, args in spec:
            if kind == "float":
                config[name] = trial.suggest_float(name, args[0], args[1], log=args[2])
            elif kind == "int":
                config[name] = trial.suggest_int(name, args[0], args[1])
            else:
                config[name] = trial.suggest_categorical(name, args)
        return objective(config)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(trial_objective, n_trials=budget)
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


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


METHODS: dict[str, Callable[[list, Callable, int, int], list[float]]] = {
    "random": lambda spec, f, n, s: run_asynctune(RandomSearch(seed=s), spec, f, n, s),
    "TPESearch": lambda spec, f, n, s: run_asynctune(TPESearch(seed=s), spec, f, n, s),
    "SkOptSearch (GP)": lambda spec, f, n, s: run_asynctune(SkOptSearch(seed=s), spec, f, n, s),
}
if _installed("optuna"):
    METHODS["optuna TPESampler"] = run_optuna
if _installed("hyperopt"):
    METHODS["hyperopt tpe"] = run_hyperopt


def one_run(job: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    problem, method, seed, budget = job
    spec, objective, _ = PROBLEMS[problem]
    start = time.process_time()  # CPU seconds: fair on a machine shared with other work
    values = METHODS[method](spec, objective, budget, seed)
    return problem, method, seed, values, time.process_time() - start


# --- reporting ----------------------------------------------------------------------------------

def summarise(runs: list[tuple[str, str, int, list[float], float]], budgets: list[int]) -> str:
    lines = []
    for problem, (_, _, best) in PROBLEMS.items():
        rows = [r for r in runs if r[0] == problem]
        if not rows:
            continue
        seeds = len({r[2] for r in rows})
        figure = "held-out error" if problem == "sgd_digits" else "simple regret"
        lines.append(f"\n{problem}: {figure}, median [25%, 75%] over {seeds} seeds")
        header = f"| {'method':<18} | " + " | ".join(f"{f'{b} evaluations':<28}" for b in budgets) + " | CPU s/run |"
        lines += [header, "|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|"]
        for method in METHODS:
            mine = [r for r in rows if r[1] == method]
            if not mine:
                continue
            cells = []
            for budget in budgets:
                regrets = np.array([min(r[3][:budget]) - best for r in mine])
                q1, med, q3 = np.percentile(regrets, [25, 50, 75])
                cells.append(f"{med:<9.4g} [{q1:.3g}, {q3:.3g}]".ljust(28))
            seconds = np.mean([r[4] for r in mine])
            lines.append(f"| {method:<18} | " + " | ".join(cells) + f" | {seconds:>9.1f} |")
    return "\n".join(lines)


def tpe_suggest_time(observations: int = 200, repeats: int = 20) -> float:
    """Median CPU seconds of one TPESearch.suggest with `observations` finished trials (Hartmann6)."""
    spec, objective, _ = PROBLEMS["hartmann6"]
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
        searcher.on_trial_complete(f"t{i}", None, error=True)  # keep the model at 200 observations
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 seeds, budgets 20 and 40")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for branin and hartmann6")
    parser.add_argument("--real-seeds", type=int, default=None, help="seeds for sgd_digits")
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    budgets = [20, 40] if args.quick else [50, 100]
    seeds = args.seeds or (3 if args.quick else 10)
    real_seeds = args.real_seeds or (3 if args.quick else 5)

    jobs = [(problem, method, seed, budgets[-1])
            for problem in args.problems for method in args.methods
            for seed in range(real_seeds if problem == "sgd_digits" else seeds)]
    # The slowest first, so the workers finish together.
    jobs.sort(key=lambda j: (not j[1].startswith("SkOpt"), j[0] != "sgd_digits"))
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        runs = pool.map(one_run, jobs, chunksize=1)
    print(summarise(runs, budgets))
    print(f"\nTPESearch.suggest with 200 observations (6 floats): {tpe_suggest_time() * 1000:.1f} CPU ms (median of 20)")
    cpu = sum(r[4] for r in runs)
    print(f"total {time.perf_counter() - start:.0f} s wall on {args.workers} workers; {cpu:.0f} CPU s in the runs "
          f"({cpu / args.workers / 60:.1f} min on {args.workers} free cores)")


if __name__ == "__main__":
    main()
