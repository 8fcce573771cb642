"""The methods: each turns a problem's space into its library's terms and returns the config of
every evaluation, in order. The evaluation itself goes through `evaluate(config) -> value`, which
records what the searcher saw; all methods see the same space:

  problems.py   asynctune                     Optuna                          hyperopt
  Float         uniform / loguniform          suggest_float(log=)             hp.uniform / hp.loguniform
  Int           randint / lograndint          suggest_int(log=)               hp.uniformint / int(hp.qloguniform(q=1))
  Cat           choice                        suggest_categorical             hp.choice
  Cond          choice of dicts {"name": b,   suggest_categorical(name), then hp.choice of dicts, each branch's
                 **branch params}             the branch's params as          params labelled "name.b.param"
                                              "name.b.param"
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from asynctune.algorithms.base import Searcher
from asynctune.algorithms.search.basic import RandomSearch
from asynctune.algorithms.search.skopt_search import SkOptSearch
from asynctune.algorithms.search.tpe import TPESearch
from asynctune.core import space as at
from asynctune.core.space import Space

from .problems import Cat, Cond, Config, Float, Int, Param

Evaluate = Callable[[Config], float]


# --- asynctune ---------------------------------------------------------------------------------------

def asynctune_domain(param: Param) -> Any:
    if isinstance(param, Float):
        return at.loguniform(param.low, param.high) if param.log else at.uniform(param.low, param.high)
    if isinstance(param, Int):
        return (at.lograndint if param.log else at.randint)(param.low, param.high + 1)
    if isinstance(param, Cat):
        return at.choice(list(param.choices))
    return at.choice([{"name": branch, **asynctune_space(params)} for branch, params in param.branches.items()])


def asynctune_space(space: dict[str, Param]) -> dict[str, Any]:
    return {name: asynctune_domain(param) for name, param in space.items()}


def run_asynctune(searcher: Searcher, space: dict[str, Param], evaluate: Evaluate, budget: int,
                  seed: int) -> None:
    searcher.set_search_properties("loss", "min", Space(asynctune_space(space)), seed=seed)
    searcher.max_trials(budget)
    for i in range(budget):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": evaluate(config)})


# --- Optuna -----------------------------------------------------------------------------------------

def optuna_config(trial: Any, space: dict[str, Param], prefix: str = "") -> Config:
    """Suggest the space through an Optuna trial (define by run): a Cond's branch, then its params."""
    config: Config = {}
    for name, param in space.items():
        label = prefix + name
        if isinstance(param, Float):
            config[name] = trial.suggest_float(label, param.low, param.high, log=param.log)
        elif isinstance(param, Int):
            config[name] = trial.suggest_int(label, param.low, param.high, log=param.log)
        elif isinstance(param, Cat):
            config[name] = trial.suggest_categorical(label, list(param.choices))
        else:
            branch = trial.suggest_categorical(label, list(param.branches))
            config[name] = {"name": branch, **optuna_config(trial, param.branches[branch], f"{label}.{branch}.")}
    return config


def run_optuna(space: dict[str, Param], evaluate: Evaluate, budget: int, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(lambda trial: evaluate(optuna_config(trial, space)), n_trials=budget)


# --- hyperopt ---------------------------------------------------------------------------------------

def hyperopt_space(space: dict[str, Param], prefix: str = "") -> dict[str, Any]:
    from hyperopt import hp
    from hyperopt.pyll import scope

    out: dict[str, Any] = {}
    for name, param in space.items():
        label = prefix + name
        if isinstance(param, Float):
            out[name] = hp.loguniform(label, math.log(param.low), math.log(param.high)) if param.log \
                else hp.uniform(label, param.low, param.high)
        elif isinstance(param, Int):
            # hyperopt has no log-scale integer: a log-uniform rounded to integers (as HyperOptSearch maps lograndint)
            out[name] = scope.int(hp.qloguniform(label, math.log(param.low), math.log(param.high), 1)) if param.log \
                else scope.int(hp.uniformint(label, param.low, param.high))
        elif isinstance(param, Cat):
            out[name] = hp.choice(label, list(param.choices))
        else:
            out[name] = hp.choice(label, [{"name": branch, **hyperopt_space(params, f"{label}.{branch}.")}
                                          for branch, params in param.branches.items()])
    return out


def run_hyperopt(space: dict[str, Param], evaluate: Evaluate, budget: int, seed: int) -> None:
    from hyperopt import Trials, fmin, tpe

    fmin(evaluate, hyperopt_space(space), algo=tpe.suggest, max_evals=budget, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)


# --- scikit-optimize (no conditional spaces) ----------------------------------------------------------

def skopt_dimensions(space: dict[str, Param]) -> list[Any]:
    from skopt.space import Categorical, Integer, Real

    dimensions = []
    for name, param in space.items():
        if isinstance(param, Float):
            dimensions.append(Real(param.low, param.high, prior="log-uniform" if param.log else "uniform", name=name))
        elif isinstance(param, Int):
            dimensions.append(Integer(param.low, param.high, prior="log-uniform" if param.log else "uniform",
                                      name=name))
        elif isinstance(param, Cat):
            dimensions.append(Categorical(list(param.choices), name=name))
        else:
            raise ValueError(f"gp_minimize cannot search the conditional parameter {name!r}")
    return dimensions


def run_gp_minimize(space: dict[str, Param], evaluate: Evaluate, budget: int, seed: int) -> None:
    from skopt import gp_minimize

    names = list(space)

    def f(x: list) -> float:
        return evaluate({name: (v.item() if isinstance(v, np.generic) else v) for name, v in zip(names, x)})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "objective has been evaluated at this point before"
        gp_minimize(f, skopt_dimensions(space), n_calls=budget, random_state=seed)


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


ASYNCTUNE: dict[str, Callable[[int], Searcher]] = {
    "random": lambda seed: RandomSearch(seed=seed),
    "TPESearch": lambda seed: TPESearch(seed=seed),
    "SkOptSearch": lambda seed: SkOptSearch(seed=seed),
}
METHODS: dict[str, Callable[[dict[str, Param], Evaluate, int, int], None]] = {
    name: (lambda make: lambda space, evaluate, budget, seed: run_asynctune(make(seed), space, evaluate, budget,
                                                                            seed))(make)
    for name, make in ASYNCTUNE.items()
}
if _installed("optuna"):
    METHODS["optuna-tpe"] = run_optuna
if _installed("hyperopt"):
    METHODS["hyperopt-tpe"] = run_hyperopt
if _installed("skopt"):
    METHODS["gp_minimize"] = run_gp_minimize
