"""Ray's `ray.tune.search`: asynctune's searchers under Ray's names and arguments."""

from __future__ import annotations

from typing import Any

import asynctune as _at

from ..._unsupported import module_getattr
from .repeater import Repeater

Searcher = _at.Searcher  # suggest(trial_id), on_trial_result, on_trial_complete(trial_id, result, error), save/restore


class BasicVariantGenerator(_at.BasicVariantSearch):
    """Ray's default searcher: random sampling and grid search.

    `max_concurrent` limits running trials (0: no limit); `random_state` seeds the draws."""

    def __init__(self, points_to_evaluate: list[dict[str, Any]] | None = None, max_concurrent: int = 0,
                 constant_grid_search: bool = False, random_state: int | None = None) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ValueError(f"BasicVariantGenerator: max_concurrent must be an integer >= 0, got {max_concurrent!r}")
        super().__init__(points_to_evaluate=points_to_evaluate, seed=random_state)
        self.max_concurrent = max_concurrent
        self._running: set[str] = set()
        self.replayable = not max_concurrent  # with a limit, suggest() depends on the trials that ended

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


class ConcurrencyLimiter(_at.ConcurrencyLimiter):
    """Ray's ConcurrencyLimiter(searcher, max_concurrent); `batch=True` is not supported."""

    def __init__(self, searcher: Any, max_concurrent: int, batch: bool = False) -> None:
        if batch:
            from ..._unsupported import unsupported
            unsupported("ConcurrencyLimiter(batch=True)", "use batch=False; asynctune asks the searcher one "
                        "trial at a time")
        super().__init__(searcher, max_concurrent)


_OTHER = "use OptunaSearch (tune.search.optuna), HyperOptSearch, TuneBOHB or SkOptSearch, or asynctune.TPESearch"
__getattr__ = module_getattr(__name__, {
    "SearchAlgorithm": "write an asynctune Searcher (tune.search.Searcher)",
    "SearchGenerator": "pass the Searcher itself as TuneConfig(search_alg=...)", "create_searcher": "build the class",
    "AxSearch": _OTHER, "BayesOptSearch": _OTHER, "HEBOSearch": _OTHER, "NevergradSearch": _OTHER,
    "ZOOptSearch": _OTHER, "DragonflySearch": _OTHER, "SigOptSearch": _OTHER,
})

__all__ = ["BasicVariantGenerator", "ConcurrencyLimiter", "Repeater", "Searcher"]
