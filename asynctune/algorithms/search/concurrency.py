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

    With `batch=True` (Ray Tune's option) the trials go in batches of `max_concurrent`: the
    next batch is suggested once every trial of this one has ended, and the wrapped searcher
    is told their ends together then, so it learns from a whole batch at once. A paused
    trial of the batch holds the next batch back until it ends: do not combine batches with
    schedulers that pause trials to wait for others (HyperBand, BOHB, promotion ASHA).

    Example:
        >>> search_alg = ConcurrencyLimiter(TPESearch(metric="loss", mode="min"), max_concurrent=4)

    Args:
        searcher: The searcher whose suggestions are rationed.
        max_concurrent: The most trials of this searcher that may be live (suggested, not
            paused and not yet complete) at any time.
        batch: Suggest in batches of `max_concurrent` and tell the searcher a batch's ends
            when the whole batch has ended.
    """

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an integer >= 1, got {max_concurrent=}")
        if not isinstance(batch, bool):
            raise ValueError(f"batch must be True or False, got {batch=}")
        super().__init__(searcher)
        self.max_concurrent = max_concurrent
        self.batch = batch
        self.live: set[str] = set()
        self.paused: set[str] = set()  # suggested, not complete, not live: waiting on the scheduler
        self.in_batch: set[str] = set()  # batch=True: the trials of the current batch that have not ended
        self.batch_size = 0  # batch=True: how many trials the current batch has had
        self.held: list[tuple[str, dict[str, Any] | None, bool, bool]] = []  # ends told at the batch's end

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A limiter pickled before batches existed (an experiment's run spec) has none.
        self.__dict__.update({"batch": False, "in_batch": set(), "batch_size": 0, "held": [], **state})

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if len(self.live) >= self.max_concurrent or (self.batch and self.batch_size >= self.max_concurrent):
            return None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.live.add(trial_id)
            if self.batch:
                self.in_batch.add(trial_id)
                self.batch_size += 1
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
        self._ended(trial_id, result, error, pruned=False)

    def on_trial_pruned(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        self._ended(trial_id, result, False, pruned=True)

    def _ended(self, trial_id: str, result: dict[str, Any] | None, error: bool, *, pruned: bool) -> None:
        self.live.discard(trial_id)
        self.paused.discard(trial_id)
        if trial_id not in self.in_batch:
            self._tell(trial_id, result, error, pruned)
            return
        self.in_batch.discard(trial_id)
        self.held.append((trial_id, result, error, pruned))
        if not self.in_batch:  # the whole batch has ended: the searcher learns from all of it
            held, self.held, self.batch_size = self.held, [], 0
            for ended in held:
                self._tell(*ended)

    def _tell(self, trial_id: str, result: dict[str, Any] | None, error: bool, pruned: bool) -> None:
        if pruned:
            super().on_trial_pruned(trial_id, result)
        else:
            super().on_trial_complete(trial_id, result, error)

    def _own_state(self) -> dict[str, Any]:
        return {"live": sorted(self.live), "paused": sorted(self.paused), "in_batch": sorted(self.in_batch),
                "batch_size": self.batch_size, "held": list(self.held)}

    def _set_own_state(self, state: dict[str, Any]) -> None:
        self.live = set(state["live"])
        self.paused = set(state.get("paused", ()))
        self.in_batch = set(state.get("in_batch", ()))
        self.batch_size = state.get("batch_size", 0)
        self.held = list(state.get("held", ()))
