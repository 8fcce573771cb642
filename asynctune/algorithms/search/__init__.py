"""Searchers: which configs to try next (random and grid, TPE, BOHB, scikit-optimize, Optuna)."""

from .basic import BasicVariantSearch, GridSearch, RandomSearch
from .bohb import BOHBSearch
from .concurrency import ConcurrencyLimiter
from .hyperopt_search import HyperOptSearch  # imports hyperopt only when used
from .optuna_search import OptunaSearch  # imports optuna only when used
from .skopt_search import SkOptSearch
from .tpe import TPESearch

__all__ = ["BOHBSearch", "BasicVariantSearch", "ConcurrencyLimiter", "GridSearch", "HyperOptSearch", "OptunaSearch", "RandomSearch",
           "SkOptSearch", "TPESearch"]
