"""The controller's side of the searcher: suggestions, and hooks off the hot path when slow."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

from ..algorithms.base import FINISHED, Searcher
from ..errors import AsynctuneError

logger = logging.getLogger(__name__)


class SearcherDriver:
    """Calls a searcher: in a thread when it is `slow` (results keep flowing meanwhile).

    Its state is saved after every suggestion and every completion, or, for a `replayable`
    searcher (random and grid search), once when the experiment ends: a resume rebuilds that
    one by asking it again (controller/replay.py), and a file per trial would cost more than
    the trial itself on a slow file system."""

    def __init__(self, searcher: Searcher, save: Callable[[Searcher], None]) -> None:
        self.searcher, self._save = searcher, save
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        # Most searchers ignore intermediate results: skip the call on the hot path then.
        self.sees_results = type(searcher).on_trial_result is not Searcher.on_trial_result
        self._save_each_change = not searcher.replayable

    def open(self) -> None:
        if self.searcher.slow:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asynctune-searcher")

    def close(self) -> None:
        if not self._save_each_change:
            self._call(self._save, self.searcher)
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    async def suggest(self, trial_id: str) -> Any:
        """A config dict, None ("not now") or FINISHED."""
        if self._thread is not None:
            config = await asyncio.get_running_loop().run_in_executor(self._thread, self.searcher.suggest, trial_id)
        else:
            config = self.searcher.suggest(trial_id)
        if config is not None and config is not FINISHED and not isinstance(config, dict):
            raise AsynctuneError(f"{type(self.searcher).__name__}.suggest() returned {config!r}, not a dict")
        return config

    def added(self) -> None:
        if self._save_each_change:
            self._call(self._save, self.searcher)

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._call(self.searcher.on_trial_result, trial_id, result)

    def paused(self, trial_id: str) -> None:
        self._call(self.searcher.on_trial_paused, trial_id)

    def resumed(self, trial_id: str) -> None:
        self._call(self.searcher.on_trial_resumed, trial_id)

    def ended(self, trial_id: str, result: dict[str, Any] | None, error: bool, *, pruned: bool = False) -> None:
        if pruned:
            self._call(self.searcher.on_trial_pruned, trial_id, result)
        else:
            self._call(self.searcher.on_trial_complete, trial_id, result, error)
        if self._save_each_change:
            self._call(self._save, self.searcher)

    def _call(self, hook: Any, *args: Any) -> None:
        if self._thread is not None:
            self._thread.submit(_log_errors, hook, *args)
        else:
            _log_errors(hook, *args)


def _log_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("%s failed", getattr(fn, "__qualname__", fn))
