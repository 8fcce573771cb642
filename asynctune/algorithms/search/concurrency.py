"""A cap on how many of a searcher's trials run at once, and the wrapper base it is built on."""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import TYPE_CHECKING, Any

from ..base import Searcher

if TYPE_CHECKING:
    from ...core.space import Space


class SearcherWrapper(Searcher):
    """A searcher around another: metric, mode, space and seed are the wrapped searcher's (one
    truth, not two copies) and every hook passes through to it. A subclass changes the hooks it
    needs and names its own state in `_own_state` / `_set_own_state`, saved with the wrapped
    searcher's.

    Example:
        >>> class Logged(SearcherWrapper):
        ...     def suggest(self, trial_id):
        ...         config = self.searcher.suggest(trial_id)
        ...         logging.info("%s: %s", trial_id, config)
        ...         return config
    """

    def __init__(self, searcher: Searcher) -> None:
        if not isinstance(searcher, Searcher):
            raise ValueError(f"searcher must be a Searcher, got {searcher!r}")
        self.searcher = searcher

    @property
    def slow(self) -> bool:  # type: ignore[override]
        return self.searcher.slow

    @property
    def multi_objective(self) -> bool:  # type: ignore[override]
        return self.searcher.multi_objective

    @property
    def metric(self) -> str | None:  # type: ignore[override]
        return self.searcher.metric

    @property
    def mode(self) -> str | None:  # type: ignore[override]
        return self.searcher.mode

    @property
    def space(self) -> Space | None:  # type: ignore[override]
        return self.searcher.space

    @property
    def seed(self) -> int | None:  # type: ignore[override]
        return self.searcher.seed

    def set_search_properties(self, metric: str | None, mode: str | None, space: Space,
                              *, seed: int | None = None) -> None:
        self.searcher.set_search_properties(metric, mode, space, seed=seed)

    def max_trials(self, num_samples: int) -> int | None:
        return self.searcher.max_trials(num_samples)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_paused(self, trial_id: str) -> None:
        self.searcher.on_trial_paused(trial_id)

    def on_trial_resumed(self, trial_id: str) -> None:
        self.searcher.on_trial_resumed(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result, error)

    def on_trial_pruned(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        self.searcher.on_trial_pruned(trial_id, result)

    def set_experiment_dir(self, path: str) -> None:
        self.searcher.set_experiment_dir(path)

    def _own_state(self) -> dict[str, Any]:
        return {}

    def _set_own_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, path: str) -> None:
        """One file: this wrapper's own state and the wrapped searcher's saved state."""
        directory = os.path.dirname(os.path.abspath(path))
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            inner = os.path.join(tmp, "searcher")
            self.searcher.save(inner)
            with open(inner, "rb") as f:
                state = {**self._own_state(), "searcher": f.read()}
            staged = os.path.join(tmp, "wrapper")
            with open(staged, "wb") as f:
                pickle.dump(state, f)
            os.replace(staged, path)

    def restore(self, path: str) -> None:
        with open(path, "rb") as f:
            state = pickle.load(f)
        directory = os.path.dirname(os.path.abspath(path))
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            inner = os.path.join(tmp, "searcher")
            with open(inner, "wb") as f:
                f.write(state["searcher"])
            self.searcher.restore(inner)
        self._set_own_state(state)


class ConcurrencyLimiter(SearcherWrapper):
    """Let at most `max_concurrent` trials of the wrapped searcher be live at once.

    A sequential model-based searcher learns nothing from trials that are still running, so
    capping them trades wall-clock time for better suggestions. While the cap is reached,
    `suggest` returns None ("not now") and the controller asks again when a trial ends or
    pauses.

    A *paused* trial is not live: it holds no worker and waits on the scheduler, which often
    waits for more trials (HyperBand and BOHB pause a rung until it is full, promotion ASHA
    pauses trials at a rung until they are promotable). Counting it would deadlock them: the
    bracket could never fill. A paused trial is live again once the scheduler resumes it, so
    while resumed trials run, suggestions wait; resumed trials themselves are not held back
    (use run(max_concurrent_trials=) to cap how many trials run at once).

    Example:
        >>> search_alg = ConcurrencyLimiter(TPESearch(metric="loss", mode="min"), max_concurrent=4)

    Args:
        searcher: The searcher whose suggestions are rationed.
        max_concurrent: The most trials of this searcher that may be live (suggested, not
            paused and not yet complete) at any time.
    """

    def __init__(self, searcher: Searcher, max_concurrent: int) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an integer >= 1, got {max_concurrent=}")
        super().__init__(searcher)
        self.max_concurrent = max_concurrent
        self.live: set[str] = set()
        self.paused: set[str] = set()  # suggested, not complete, not live: waiting on the scheduler

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if len(self.live) >= self.max_concurrent:
            return None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.live.add(trial_id)
        return config

    def on_trial_paused(self, trial_id: str) -> None:
        if trial_id in self.live:
            self.live.discard(trial_id)
            self.paused.add(trial_id)
        super().on_trial_paused(trial_id)

    def on_trial_resumed(self, trial_id: str) -> None:
        if trial_id in self.paused:
            self.paused.discard(trial_id)
            self.live.add(trial_id)
        super().on_trial_resumed(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        self.live.discard(trial_id)
        self.paused.discard(trial_id)
        super().on_trial_complete(trial_id, result, error)

    def on_trial_pruned(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        self.live.discard(trial_id)
        self.paused.discard(trial_id)
        super().on_trial_pruned(trial_id, result)

    def _own_state(self) -> dict[str, Any]:
        return {"live": sorted(self.live), "paused": sorted(self.paused)}

    def _set_own_state(self, state: dict[str, Any]) -> None:
        self.live = set(state["live"])
        self.paused = set(state.get("paused", ()))
