"""Ray's `ray.tune.search`: asynctune's searchers under Ray's names and arguments."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

import asynctune as _at
from asynctune.algorithms.base import FINISHED
from asynctune.algorithms.search.basic import _merge as merge_point  # a point over a sampled config
from asynctune.core.space import Path

from ..._unsupported import module_getattr
from .repeater import Repeater



class Searcher(_at.Searcher):
    """Ray's searcher interface, asynctune's hooks of the same names: `suggest(trial_id)` returns a
    config, None ("not now") or `Searcher.FINISHED`; `on_trial_result`, `on_trial_complete(trial_id,
    result, error)`, `save` / `restore`.

    Example:
        >>> class Grid(tune.search.Searcher):
        ...     def suggest(self, trial_id):
        ...         return {"x": next(self.values)} if self.left else Searcher.FINISHED
    """

    FINISHED = FINISHED


class BasicVariantGenerator(_at.BasicVariantSearch):
    """Ray's default searcher: random sampling and grid search.

    Example:
        >>> BasicVariantGenerator(points_to_evaluate=[{"lr": 0.01}], random_state=0)

    As in Ray, each of `points_to_evaluate` replaces one of the `num_samples` repeats of the
    grid, and a point leaving a `grid_search` key open runs once per value of it (asynctune's
    own `BasicVariantSearch` adds the points to the samples). `max_concurrent` limits running
    trials (0: no limit); `random_state` seeds the draws."""

    def __init__(self, points_to_evaluate: list[dict[str, Any]] | None = None, max_concurrent: int = 0,
                 constant_grid_search: bool = False, random_state: int | None = None) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ValueError(f"BasicVariantGenerator: max_concurrent must be an integer >= 0, got {max_concurrent!r}")
        super().__init__(points_to_evaluate=points_to_evaluate, seed=random_state)
        self.max_concurrent = max_concurrent
        self._running: set[str] = set()
        self.replayable = not max_concurrent  # with a limit, suggest() depends on the trials that ended

    def max_trials(self, num_samples: int) -> int | None:
        super().max_trials(num_samples)  # records num_samples
        if num_samples < 0:
            return None
        grid = self.space.grid_size if self.space is not None else 1
        from_points = sum(len(self._grid_left_open(point)) for point in self.points_to_evaluate)
        return from_points + max(num_samples - len(self.points_to_evaluate), 0) * grid

    def _configs(self) -> Iterator[dict[str, Any]]:
        assert self.space is not None
        rng = np.random.default_rng(self.seed)
        for point in self.points_to_evaluate:
            fixed = self._fixed_by(point)  # its branch, its numbers and the grid keys it sets
            for grid_point in self._grid_left_open(point):
                open_keys = {path: value for path, value in grid_point.items() if not _sets(point, path)}
                yield merge_point(self.space.sample(rng, {**fixed, **open_keys}), point)
        repeats = self._num_samples - len(self.points_to_evaluate)
        while self._num_samples < 0 or repeats > 0:
            for grid_point in self.space.iter_grid_points():
                yield self.space.sample(rng, grid_point)
            repeats -= 1

    def _grid_left_open(self, point: dict[str, Any]) -> list[dict[Path, Any]]:
        """The grid points a point runs on: one per combination of the grid keys it does not set."""
        if self.space is None:
            return [{}]
        fixed = {path for path, _ in self.space.grid if _sets(point, path)}
        runs: dict[tuple[Any, ...], dict[Path, Any]] = {}
        for grid_point in self.space.iter_grid_points():
            runs.setdefault(tuple(repr(v) for p, v in grid_point.items() if p not in fixed), grid_point)
        return list(runs.values())

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.max_concurrent and len(self._running) >= self.max_concurrent:
            return None
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self._running.add(trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._running.discard(trial_id)
        super().on_trial_complete(trial_id, result, error)


def _sets(point: Any, path: Path) -> bool:
    """Whether the point gives a value at `path` (or above it, replacing what is below)."""
    for key in path:
        if not isinstance(point, dict):
            return True
        if key not in point:
            return False
        point = point[key]
    return True


ConcurrencyLimiter = _at.ConcurrencyLimiter  # Ray's (searcher, max_concurrent, batch=False)


_BY_NAME = {  # Ray's name -> (module of this package, class)
    "variant_generator": ("", "BasicVariantGenerator"), "random": ("", "BasicVariantGenerator"),
    "optuna": (".optuna", "OptunaSearch"), "hyperopt": (".hyperopt", "HyperOptSearch"),
    "bohb": (".bohb", "TuneBOHB"), "skopt": (".skopt", "SkOptSearch"),
}
_NOT_MIRRORED = {"ax": "AxSearch", "bayesopt": "BayesOptSearch", "nevergrad": "NevergradSearch",
                 "zoopt": "ZOOptSearch", "hebo": "HEBOSearch", "dragonfly": "DragonflySearch", "sigopt": "SigOptSearch"}


def create_searcher(search_alg: str, **kwargs: Any) -> Any:
    """Ray's searcher by name, as `tune.run(search_alg="optuna")` takes it: "variant_generator"
    (or "random"), "optuna", "hyperopt", "bohb", "skopt"; `kwargs` go to the class.

    Example:
        >>> create_searcher("optuna", seed=0)
    """
    if search_alg in _NOT_MIRRORED:
        return __getattr__(_NOT_MIRRORED[search_alg])  # raises, naming the asynctune way
    if search_alg not in _BY_NAME:
        raise ValueError(f"unknown search_alg name {search_alg!r}; Ray's names are "
                         f"{sorted([*_BY_NAME, *_NOT_MIRRORED])}")
    module, name = _BY_NAME[search_alg]
    return getattr(importlib.import_module(module, __name__) if module else sys.modules[__name__], name)(**kwargs)


_OTHER = "use OptunaSearch (tune.search.optuna), HyperOptSearch, TuneBOHB or SkOptSearch, or asynctune.TPESearch"
__getattr__ = module_getattr(__name__, {
    "SearchAlgorithm": "write an asynctune Searcher (tune.search.Searcher)",
    "SearchGenerator": "pass the Searcher itself as TuneConfig(search_alg=...)",
    "AxSearch": _OTHER, "BayesOptSearch": _OTHER, "HEBOSearch": _OTHER, "NevergradSearch": _OTHER,
    "ZOOptSearch": _OTHER, "DragonflySearch": _OTHER, "SigOptSearch": _OTHER,
})

__all__ = ["BasicVariantGenerator", "ConcurrencyLimiter", "Repeater", "Searcher"]
