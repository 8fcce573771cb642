"""Ray's `Repeater`: each config a searcher suggests runs `repeat` times, and the searcher learns
the mean of the repeats' metric."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from asynctune.algorithms.base import Searcher
from asynctune.algorithms.search.concurrency import SearcherWrapper

logger = logging.getLogger(__name__)

TRIAL_INDEX = "__trial_index__"


@dataclass
class _Group:
    """The trials that run one suggestion; the first one's id is the one the searcher knows."""

    primary: str
    config: dict[str, Any]
    members: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)  # per ended member


class Repeater(SearcherWrapper):
    """Run each suggested config `repeat` times (e.g. over random seeds), and tell the wrapped
    searcher the mean of the repeats' metric once all have ended: Ray's `tune.search.Repeater`.

    Example:
        >>> search_alg = Repeater(OptunaSearch(), repeat=3)
        >>> tune.TuneConfig(search_alg=search_alg, metric="loss", mode="min", num_samples=30)

    `num_samples` counts trials, so give a multiple of `repeat`. With `set_index` (the default)
    each config gets `"__trial_index__"`: 0, 1, ..., repeat - 1. The wrapped searcher sees no
    intermediate results, as in Ray.
    """

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"Repeater: repeat must be an integer >= 1, got {repeat=}")
        super().__init__(searcher)
        self.repeat, self.set_index = repeat, set_index
        self._groups: list[_Group] = []
        self._group_of: dict[str, _Group] = {}

    def max_trials(self, num_samples: int) -> int | None:
        if num_samples >= 0 and num_samples % self.repeat:
            logger.warning("Repeater: num_samples=%d is not a multiple of repeat=%d; the last config runs fewer "
                           "times", num_samples, self.repeat)
        inner = self.searcher.max_trials(-1 if num_samples < 0 else math.ceil(num_samples / self.repeat))
        return None if inner is None else min(num_samples, inner * self.repeat)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        group = self._groups[-1] if self._groups else None
        if group is None or len(group.members) >= self.repeat:
            config = self.searcher.suggest(trial_id)
            if not isinstance(config, dict):
                return config  # None ("not now") or FINISHED
            group = _Group(trial_id, dict(config))
            self._groups.append(group)
        config = dict(group.config)
        if self.set_index:
            config[TRIAL_INDEX] = len(group.members)
        group.members.append(trial_id)
        self._group_of[trial_id] = group
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        pass  # the wrapped searcher learns each config's mean only

    def on_trial_paused(self, trial_id: str) -> None:
        pass

    def on_trial_resumed(self, trial_id: str) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        group = self._group_of.get(trial_id)
        if group is None:
            return
        value = (result or {}).get(self.metric) if isinstance(self.metric, str) else None
        group.scores[trial_id] = float(value) if isinstance(value, (int, float)) and not error else None
        if len(group.scores) < self.repeat:
            return
        finite = [v for v in group.scores.values() if v is not None and math.isfinite(v)]
        if not finite:
            self.searcher.on_trial_complete(group.primary, None, error=True)
            return
        self.searcher.on_trial_complete(group.primary, {self.metric: sum(finite) / len(finite)})

    def on_trial_pruned(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        self.on_trial_complete(trial_id, result)

    def _own_state(self) -> dict[str, Any]:
        return {"groups": self._groups}

    def _set_own_state(self, state: dict[str, Any]) -> None:
        self._groups = state["groups"]
        self._group_of = {member: group for group in self._groups for member in group.members}
