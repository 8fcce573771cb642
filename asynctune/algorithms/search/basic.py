"""Random and grid search: the default searcher (Ray Tune's BasicVariantGenerator)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ...errors import SearchSpaceError
from ...core.space import Space, format_path
from ..base import FINISHED, Searcher


class BasicVariantSearch(Searcher):
    """Grid search crossed with random sampling.

    Every `grid_search` combination is tried `num_samples` times; each time the other domains
    are drawn at random from a generator seeded by `seed`, so a seed fixes every config.

    Example:
        >>> run(train, config={"lr": loguniform(1e-4, 1e-1), "bs": grid_search([32, 64])},
        ...     num_samples=4, search_alg=BasicVariantSearch(seed=0))  # 8 trials

    Args:
        points_to_evaluate: Configs (possibly partial) to try first, before any sampling; keys
            they leave out are sampled. They count towards the trial total. A key the space
            does not have, or a value outside its domain, is an error before any trial starts.
        seed: Seeds the random draws (run()'s `seed` is used when this is None).
    """

    multi_objective = True  # it never reads the metric, so several metrics are as good as one
    replayable = True  # its configs follow from the seed and their position: a resume asks again

    def __init__(self, *, points_to_evaluate: Sequence[dict[str, Any]] | None = None,
                 seed: int | None = None) -> None:
        super().__init__()
        if points_to_evaluate is not None and not all(isinstance(p, dict) for p in points_to_evaluate):
            raise ValueError(f"points_to_evaluate must be a list of dicts, got {points_to_evaluate!r}")
        self.points_to_evaluate = list(points_to_evaluate or [])
        self.seed = seed
        self._num_samples = 1
        self._iterator: Iterator[dict[str, Any]] | None = None
        self._suggested = 0

    def set_search_properties(self, metric: Any, mode: Any, space: Space, *, seed: int | None = None) -> None:
        super().set_search_properties(metric, mode, space, seed=seed)
        if not self.points_to_evaluate:
            return
        # A point is checked before any trial starts: a misspelt key or a value outside its
        # domain (or a domain where a value belongs) would otherwise reach the trainable.
        from .model_based import check_point_keys, searchable_parameters, values_from_point  # imports basic

        check_point_keys(space, self.points_to_evaluate, owner="BasicVariantSearch")
        params = searchable_parameters(space)
        for point in self.points_to_evaluate:
            values_from_point(params, point, owner="BasicVariantSearch")

    def max_trials(self, num_samples: int) -> int | None:
        self._num_samples = num_samples
        if num_samples < 0:
            return None
        grid = self.space.grid_size if self.space is not None else 1
        return num_samples * grid + len(self.points_to_evaluate)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.space is None:
            raise RuntimeError("BasicVariantSearch.suggest called before set_search_properties")
        if self._iterator is None:
            self._iterator = self._configs()
            for _ in range(self._suggested):  # after restore(): continue the same sequence
                next(self._iterator, None)
        config = next(self._iterator, FINISHED)
        if config is not FINISHED:
            self._suggested += 1
        return config

    def save(self, path: str) -> None:
        # The sequence is a pure function of the seed: its position is the whole state.
        with open(path, "w") as f:
            json.dump({"suggested": self._suggested, "seed": self.seed}, f)

    def restore(self, path: str) -> None:
        with open(path) as f:
            state = json.load(f)
        self._suggested, self.seed = int(state["suggested"]), state["seed"]
        self._iterator = None

    def _configs(self) -> Iterator[dict[str, Any]]:
        assert self.space is not None
        rng = np.random.default_rng(self.seed)
        for point in self.points_to_evaluate:
            yield _merge(self.space.sample(rng, self._fixed_by(point)), point)
        repeat = 0
        while self._num_samples < 0 or repeat < self._num_samples:
            for grid_point in self.space.iter_grid_points():
                yield self.space.sample(rng, grid_point)
            repeat += 1

    def _fixed_by(self, point: dict[str, Any]) -> dict:
        """The values a point sets, as Space.sample takes them: so a choice takes the branch
        the point names (drawing the keys it leaves out there), and a sample_from reads the
        point's values. A grid key the point leaves out takes the grid's first value."""
        from .model_based import lookup, searchable_parameters, values_from_point  # model_based imports basic

        assert self.space is not None
        fixed = next(self.space.iter_grid_points())
        for path, _ in self.space.grid:
            found, value = lookup(point, path)
            if found:
                fixed[path] = value
        fixed.update(values_from_point(searchable_parameters(self.space), point))
        return fixed


RandomSearch = BasicVariantSearch
GridSearch = BasicVariantSearch


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def check_no_grid(space: Space, owner: str) -> None:
    """Model-based searchers cannot expand grids: say so before any trial starts."""
    if space.grid:
        raise SearchSpaceError(
            f"{owner} does not support grid_search (found at {', '.join(format_path(p) for p, _ in space.grid)}); "
            "use choice() instead"
        )
