"""The suite's problems: a library-neutral space, a noiseless objective, its minimum and argmin.

A space is a dict of parameters, in order:
  Float(low, high, log)   a float in [low, high]
  Int(low, high, log)     an integer in [low, high], both ends included
  Cat(choices)            one of the choices
  Cond(branches)          a conditional choice: {branch name: {parameter: Float | Int | Cat}};
                          the config holds {"name": branch, **that branch's parameters}
Each peer (peers.py) turns the same space into its own library's terms.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    low: int
    high: int  # included
    log: bool = False


@dataclass(frozen=True)
class Cat:
    choices: tuple


@dataclass(frozen=True)
class Cond:
    branches: dict[str, dict[str, Float | Int | Cat]]


Param = Float | Int | Cat | Cond
Config = dict[str, Any]

CATEGORIES = ("continuous", "mixed", "conditional", "integer", "noisy")


@dataclass(frozen=True)
class Problem:
    """One benchmark function. `optimum` is f(argmin); regret is f(config) - optimum."""

    name: str
    half: str  # "tuning", "heldout", or "extra" (not in either half)
    category: str
    space: dict[str, Param]
    f: Callable[[Config], float]
    optimum: float
    argmin: Config | None
    noise_sd: float = 0.0
    about: str = field(default="", compare=False)

    def objective(self, seed: int) -> Callable[[Config], tuple[float, float]]:
        """config -> (the value the searcher sees, the noiseless value). Noise is drawn in call order
        from a generator seeded by (seed, problem), so every method of a seed sees the same draws."""
        rng = np.random.default_rng([seed, sum(map(ord, self.name))])

        def evaluate(config: Config) -> tuple[float, float]:
            true = float(self.f(config))
            return (true + float(rng.normal(0.0, self.noise_sd)) if self.noise_sd else true), true

        return evaluate


# --- continuous ------------------------------------------------------------------------------------

def _vector(c: Config, d: int) -> np.ndarray:
    return np.array([c[f"x{i}"] for i in range(d)], dtype=float)


def branin(c: Config) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ARGMIN = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]


def hartmann6(c: Config) -> float:
    x = _vector(c, 6)
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def levy(x: np.ndarray) -> float:
    w = 1 + (x - 1) / 4
    middle = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    return float(np.sin(np.pi * w[0]) ** 2 + middle + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(-20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d)) - math.exp(np.sum(np.cos(2 * math.pi * x)) / d)
                 + 20 + math.e)


_ST_ARGMIN = -2.903534018185960


def styblinski_tang(x: np.ndarray) -> float:
    return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))


def _floats(d: int, low: float, high: float) -> dict[str, Param]:
    return {f"x{i}": Float(low, high) for i in range(d)}


def _point(values: list[float]) -> Config:
    return {f"x{i}": v for i, v in enumerate(values)}


# --- mixed ------------------------------------------------------------------------------------------

def mixed_trap(c: Config) -> float:
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


# optimizer x schedule: the best cell (adam, step) is in neither the best row on average (sgd) nor
# the best column (cosine), so the categories must be modelled together.
_OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "lamb")
_SCHEDULES = ("const", "cosine", "step")
_PAIR = np.array([[0.20, 0.20, 0.20], [0.45, 0.40, 0.00], [0.25, 0.30, 0.35], [0.50, 0.30, 0.40],
                  [0.35, 0.15, 0.45]])
_BEST_LOG_LR = {"sgd": -1.0, "adam": -3.0, "rmsprop": -3.5, "adagrad": -1.5, "lamb": -2.5}


def mixed_interact(c: Config) -> float:
    """Issue 33's shape: two interacting categoricals (5 and 3) beside a log-float, a float, a
    log-int and an int. The best lr depends on the optimizer and the batch size, the best dropout
    on the depth."""
    pair = _PAIR[_OPTIMIZERS.index(c["optimizer"]), _SCHEDULES.index(c["schedule"])]
    log_batch = math.log2(c["batch"])
    best_log_lr = _BEST_LOG_LR[c["optimizer"]] + 0.15 * (log_batch - 6)
    return float(pair + 0.05 * (math.log10(c["lr"]) - best_log_lr) ** 2 + 0.02 * (log_batch - 6) ** 2
                 + 0.02 * (c["layers"] - 4) ** 2 + 0.5 * (c["dropout"] - 0.08 * c["layers"]) ** 2)


_ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")
_INITS = ("he", "xavier", "normal")
_ACT_INIT = np.array([[0.10, 0.12, 0.14], [0.30, 0.00, 0.35], [0.12, 0.25, 0.20], [0.40, 0.20, 0.45]])
_NORM_COST = {"none": 0.10, "batch": 0.05, "layer": 0.0}
_NORM_BEST_X = {"none": 0.2, "batch": 0.5, "layer": 0.8}


def mixed_cats(c: Config) -> float:
    """Four categoricals (4, 3, 3, 2 choices): activation x init interact (relu is best on
    average, tanh with xavier is best), the norm moves the best x, the optimizer moves the best
    weight decay; beside a float, a log-float and an int."""
    act, init = _ACTIVATIONS.index(c["activation"]), _INITS.index(c["init"])
    best_log_wd = -4.0 if c["optimizer"] == "adamw" else -2.0
    return float(_ACT_INIT[act, init] + _NORM_COST[c["norm"]] + (c["x"] - _NORM_BEST_X[c["norm"]]) ** 2
                 + 0.04 * (math.log10(c["wd"]) - best_log_wd) ** 2 + (0.0 if c["optimizer"] == "adamw" else 0.03)
                 + 0.005 * (c["width"] - 11) ** 2)


# A pipeline: model x loss interact (the best cell, tree with l1, is in neither the best row nor the
# best column), the scaler matters for some models only, augmentation helps some models and hurts
# others and moves the best regularisation; the best lr depends on the model.
_MODELS = ("linear", "tree", "knn", "net")
_LOSSES = ("l2", "huber", "l1")
_MODEL_LOSS = np.array([[0.20, 0.22, 0.24], [0.35, 0.40, 0.00], [0.25, 0.30, 0.35], [0.40, 0.10, 0.40]])
_SCALERS = ("none", "standard", "robust")
_BEST_LOG_LR_MODEL = {"linear": -2.0, "tree": -1.0, "knn": -3.0, "net": -3.5}


def mixed_pipeline(c: Config) -> float:
    """Four categoricals (4 models, 3 losses, 3 scalers, augment or not) that interact, beside a
    log-float, a float and an int."""
    model, loss = _MODELS.index(c["model"]), _LOSSES.index(c["loss"])
    scaler = _SCALERS.index(c["scaler"])
    scaling = (0.0, 0.03, 0.03)[scaler] if c["model"] == "tree" else (0.10, 0.0, 0.03)[scaler]
    augment_helps = c["model"] in ("knn", "net")
    augmenting = 0.0 if c["augment"] == augment_helps else 0.04
    best_reg = 0.2 if c["augment"] else 0.6
    return float(_MODEL_LOSS[model, loss] + scaling + augmenting
                 + 0.04 * (math.log10(c["lr"]) - _BEST_LOG_LR_MODEL[c["model"]]) ** 2
                 + 0.3 * (c["reg"] - best_reg) ** 2 + 0.0002 * (c["epochs"] - 30) ** 2)


_AB = np.array([[0.10, 0.15, 0.20], [0.30, 0.35, 0.00], [0.15, 0.20, 0.25]])
_FLAG_BEST_X = (0.2, 0.7, 0.5)


def mixed_flags(c: Config) -> float:
    """Five categoricals (3, 3, 2, 2 and 4 choices): a and b interact, c and d matter only together
    (equal is worse), e does not matter at all; the best x depends on a; a log-float."""
    a, b = c["a"], c["b"]
    return float(_AB[a, b] + (0.08 if c["c"] == c["d"] else 0.0) + 0.5 * (c["x"] - _FLAG_BEST_X[a]) ** 2
                 + 0.03 * (math.log10(c["lr"]) + 2.5) ** 2)


# --- conditional -----------------------------------------------------------------------------------

def cond_models(c: Config) -> float:
    """A choice of three model families with their own parameters, and one shared float. The
    linear and forest branches are fair nearly everywhere (0.2-0.4); boosting is bad (0.6) except
    in a basin of lr and rounds that holds the optimum."""
    model = c["model"]
    shared = 0.1 * (c["scale"] - 0.5) ** 2
    if model["name"] == "linear":
        return 0.30 + 0.02 * (math.log10(model["C"]) - 1) ** 2 + (0.0 if model["penalty"] == "l1" else 0.05) + shared
    if model["name"] == "forest":
        return 0.20 + 0.002 * (model["depth"] - 12) ** 2 + 0.5 * (model["features"] - 0.35) ** 2 + shared
    basin = ((math.log10(model["lr"]) + 1.5) ** 2 + (math.log10(model["rounds"] / 300)) ** 2) / (2 * 0.35**2)
    return 0.6 * (1 - math.exp(-basin)) + 0.2 * (model["subsample"] - 0.8) ** 2 + shared


def cond_optimizers(c: Config) -> float:
    """A choice of optimizers with their own parameters (a float, a bool; a float, a log-float; an
    int) beside a shared log-scale lr whose best value depends on the branch, and an int."""
    opt, log_lr = c["optimizer"], math.log10(c["lr"])
    depth = 0.02 * (c["layers"] - 3) ** 2
    if opt["name"] == "sgd":  # the optimum, in a ridge of momentum and lr; worse than adam outside it
        ridge = ((opt["momentum"] - 0.9) / 0.15) ** 2 + ((log_lr + 1.3) / 0.7) ** 2
        return 0.3 * (1 - math.exp(-ridge / 2)) + (0.0 if opt["nesterov"] else 0.05) + depth
    if opt["name"] == "adam":
        return 0.05 + 0.03 * (log_lr + 3) ** 2 + 2 * (opt["beta1"] - 0.9) ** 2 \
            + 0.005 * (math.log10(opt["eps"]) + 8) ** 2 + depth
    return 0.2 + 0.0004 * (opt["history"] - 20) ** 2 + 0.01 * (log_lr + 0.5) ** 2 + depth


# --- integer-heavy ----------------------------------------------------------------------------------

_IQ_BEST = {"a": 13, "b": 6, "c": -3, "e": 2, "f": 71}
_IQ_RANGE = {"a": 20, "b": 20, "c": 20, "e": 7, "f": 100}


def int_quadratic(c: Config) -> float:
    """Six integers (one on a log scale) in a coupled quadratic bowl."""
    u = {k: (c[k] - best) / _IQ_RANGE[k] for k, best in _IQ_BEST.items()}
    u["d"] = math.log10(c["d"] / 50) / 3
    return float(sum(v**2 for v in u.values()) + (u["a"] - u["b"]) ** 2 + 0.5 * (u["c"] + u["f"]) ** 2)


_IR_TARGET = np.array([7, -4, 12, 0, -15])


def int_ripple(c: Config) -> float:
    """Five integers in [-20, 20] in a bowl with ripples of period 5 (local minima), and a
    log-scale integer."""
    z = np.array([c[f"k{i}"] for i in range(5)]) - _IR_TARGET
    return float(np.sum((z / 10) ** 2 + 0.3 * (1 - np.cos(2 * np.pi * z / 5))) + ((math.log2(c["n"]) - 8) / 4) ** 2)


# --- an extra problem with an unknown optimum -------------------------------------------------------

_DIGITS: tuple | None = None


def sgd_digits(c: Config) -> float:
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


def _problems() -> list[Problem]:
    mixed_trap_space = {"kind": Cat(("trap", "flat", "good", "bad")), "x": Float(0.0, 1.0), "y": Float(0.0, 1.0),
                        "lr": Float(1e-5, 1.0, log=True), "n": Int(1, 64)}
    return [
        # tuning
        Problem("branin", "tuning", "continuous", {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}, branin,
                0.397887, {"x1": math.pi, "x2": 2.275}, about="2 floats, 3 global minima"),
        Problem("rosenbrock", "tuning", "continuous", {"x1": Float(-2.0, 2.0), "x2": Float(-1.0, 3.0)},
                lambda c: rosenbrock(np.array([c["x1"], c["x2"]])), 0.0, {"x1": 1.0, "x2": 1.0},
                about="2 floats, a narrow curved valley"),
        Problem("hartmann6", "tuning", "continuous", _floats(6, 0.0, 1.0), hartmann6, -3.32237, _point(_H_ARGMIN),
                about="6 floats in [0, 1], interacting"),
        Problem("levy4", "tuning", "continuous", _floats(4, -10.0, 10.0), lambda c: levy(_vector(c, 4)), 0.0,
                _point([1.0] * 4), about="4 floats in [-10, 10], a grid of local minima, minimum at (1, 1, 1, 1)"),
        Problem("mixed_trap", "tuning", "mixed", mixed_trap_space, mixed_trap, 0.0,
                {"kind": "good", "x": 0.75, "y": 0.25, "lr": 1e-2, "n": 20},
                about="a choice of 4 kinds, 2 floats, a log-float, an int: the kind 'trap' looks best "
                      "early, 'good' holds the optimum in a basin"),
        Problem("mixed_interact", "tuning", "mixed",
                {"optimizer": Cat(_OPTIMIZERS), "schedule": Cat(_SCHEDULES), "lr": Float(1e-5, 1.0, log=True),
                 "dropout": Float(0.0, 0.8), "batch": Int(8, 512, log=True), "layers": Int(1, 8)},
                mixed_interact, 0.0,
                {"optimizer": "adam", "schedule": "step", "lr": 1e-3, "dropout": 0.32, "batch": 64, "layers": 4},
                about="issue 33's shape: categoricals of 5 and 3 that interact, a log-float, a float, "
                      "a log-int and an int"),
        Problem("cond_models", "tuning", "conditional",
                {"model": Cond({"linear": {"C": Float(1e-4, 1e4, log=True), "penalty": Cat(("l1", "l2"))},
                                "forest": {"depth": Int(1, 20), "features": Float(0.1, 1.0)},
                                "boosting": {"lr": Float(1e-3, 1.0, log=True), "rounds": Int(10, 1000, log=True),
                                             "subsample": Float(0.5, 1.0)}}),
                 "scale": Float(0.0, 1.0)},
                cond_models, 0.0,
                {"model": {"name": "boosting", "lr": 10**-1.5, "rounds": 300, "subsample": 0.8}, "scale": 0.5},
                about="3 model families with 2-3 parameters each and a shared float; the best family "
                      "is bad outside a basin"),
        Problem("int_quadratic", "tuning", "integer",
                {"a": Int(0, 20), "b": Int(0, 20), "c": Int(-10, 10), "d": Int(1, 1000, log=True), "e": Int(1, 8),
                 "f": Int(0, 100)},
                int_quadratic, 0.0, {"a": 13, "b": 6, "c": -3, "d": 50, "e": 2, "f": 71},
                about="6 integers (one log-scale), a coupled quadratic"),
        Problem("noisy_branin", "tuning", "noisy", {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}, branin,
                0.397887, {"x1": math.pi, "x2": 2.275}, noise_sd=0.5,
                about="Branin plus Gaussian noise (sd 0.5)"),
        Problem("mixed_pipeline", "tuning", "mixed",
                {"model": Cat(_MODELS), "loss": Cat(_LOSSES), "scaler": Cat(_SCALERS), "augment": Cat((False, True)),
                 "lr": Float(1e-5, 1.0, log=True), "reg": Float(0.0, 1.0), "epochs": Int(1, 50)},
                mixed_pipeline, 0.0,
                {"model": "tree", "loss": "l1", "scaler": "none", "augment": False, "lr": 0.1, "reg": 0.6,
                 "epochs": 30},
                about="4 categoricals (4, 3, 3, 2) that interact with each other and move the best "
                      "log-float and float; an int"),
        Problem("mixed_flags", "tuning", "mixed",
                {"a": Cat((0, 1, 2)), "b": Cat((0, 1, 2)), "c": Cat((0, 1)), "d": Cat((0, 1)), "e": Cat((0, 1, 2, 3)),
                 "x": Float(0.0, 1.0), "lr": Float(1e-5, 1.0, log=True)},
                mixed_flags, 0.0, {"a": 1, "b": 2, "c": 0, "d": 1, "e": 0, "x": 0.7, "lr": 10**-2.5},
                about="5 categoricals (3, 3, 2, 2, 4): a pair that interacts, a pair that matters only "
                      "together, one that does not matter; a float whose best value depends on a; a log-float"),
        # heldout
        Problem("ackley5", "heldout", "continuous", _floats(5, -10.0, 30.0), lambda c: ackley(_vector(c, 5)), 0.0,
                _point([0.0] * 5), about="5 floats in [-10, 30], multimodal, minimum at 0 (off-centre)"),
        Problem("rosenbrock6", "heldout", "continuous", _floats(6, -2.0, 2.0), lambda c: rosenbrock(_vector(c, 6)),
                0.0, _point([1.0] * 6), about="6 floats in [-2, 2], a narrow curved valley"),
        Problem("styblinski_tang10", "heldout", "continuous", _floats(10, -5.0, 5.0),
                lambda c: styblinski_tang(_vector(c, 10)), 10 * styblinski_tang(np.array([_ST_ARGMIN])),
                _point([_ST_ARGMIN] * 10), about="10 floats in [-5, 5], 2^10 local minima"),
        Problem("mixed_cats", "heldout", "mixed",
                {"activation": Cat(_ACTIVATIONS), "init": Cat(_INITS), "norm": Cat(tuple(_NORM_COST)),
                 "optimizer": Cat(("adamw", "sgd")), "x": Float(0.0, 1.0), "wd": Float(1e-6, 1e-1, log=True),
                 "width": Int(1, 16)},
                mixed_cats, 0.0,
                {"activation": "tanh", "init": "xavier", "norm": "layer", "optimizer": "adamw", "x": 0.8,
                 "wd": 1e-4, "width": 11},
                about="4 categoricals (4, 3, 3, 2) interacting with each other and with a float and a "
                      "log-float, and an int"),
        Problem("cond_optimizers", "heldout", "conditional",
                {"optimizer": Cond({"sgd": {"momentum": Float(0.0, 0.99), "nesterov": Cat((True, False))},
                                    "adam": {"beta1": Float(0.8, 0.999), "eps": Float(1e-10, 1e-4, log=True)},
                                    "lbfgs": {"history": Int(3, 50)}}),
                 "lr": Float(1e-5, 1.0, log=True), "layers": Int(1, 6)},
                cond_optimizers, 0.0,
                {"optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True}, "lr": 10**-1.3, "layers": 3},
                about="3 optimizers with their own parameters, a shared log-float whose best value "
                      "depends on the branch, an int"),
        Problem("int_ripple", "heldout", "integer",
                {**{f"k{i}": Int(-20, 20) for i in range(5)}, "n": Int(1, 4096, log=True)},
                int_ripple, 0.0, {**{f"k{i}": int(t) for i, t in enumerate(_IR_TARGET)}, "n": 256},
                about="5 integers in [-20, 20] with ripples (local minima) and a log-scale integer"),
        Problem("noisy_hartmann6", "heldout", "noisy", _floats(6, 0.0, 1.0), hartmann6, -3.32237, _point(_H_ARGMIN),
                noise_sd=0.1, about="Hartmann6 plus Gaussian noise (sd 0.1)"),
        # extra: a real model, unknown optimum (figure: the held-out error)
        Problem("sgd_digits", "extra", "mixed",
                {"alpha": Float(1e-7, 1e-1, log=True), "l1_ratio": Float(0.0, 1.0), "eta0": Float(1e-4, 1.0, log=True),
                 "max_iter": Int(5, 30), "loss": Cat(("hinge", "log_loss", "modified_huber")),
                 "learning_rate": Cat(("optimal", "constant", "invscaling", "adaptive"))},
                sgd_digits, 0.0, None, about="scikit-learn SGDClassifier on load_digits (held-out error)"),
    ]


PROBLEMS: dict[str, Problem] = {p.name: p for p in _problems()}
TUNING = [p.name for p in PROBLEMS.values() if p.half == "tuning"]
HELDOUT = [p.name for p in PROBLEMS.values() if p.half == "heldout"]
