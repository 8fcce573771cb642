"""Background tasks of an executor, all owned by one TaskGroup.

The group is entered in the executor's start() and exited in its close(), so no task the
executor starts (a heartbeat, a reconnection, a decision on its way) outlives it. A task that
fails is logged, never allowed to fail the group: that would cancel the controller's task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..core.compat import TaskGroup

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OwnedTasks:
    """A TaskGroup held open between open() and close(), for tasks started from callbacks."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._group: TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def is_open(self) -> bool:
        return self._group is not None

    async def open(self) -> None:
        if self._group is None:
            group = TaskGroup()
            await group.__aenter__()
            self._group = group

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T | None] | None:
        """Start `coro` in the group; None (and `coro` is closed) once the group is closed."""
        if self._group is None:
            coro.close()
            return None
        task = self._group.create_task(self._guarded(coro, name), name=f"asynctune-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, grace_s: float = 0.0) -> None:
        """Let running tasks finish for up to `grace_s`, cancel the rest, exit the group."""
        group, self._group = self._group, None
        if group is None:
            return
        if self._tasks and grace_s > 0:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        await group.__aexit__(None, None, None)

    async def _guarded(self, coro: Coroutine[Any, Any, T], name: str) -> T | None:
        try:
            return await coro
        except Exception:
            logger.exception("%s: background task %s failed", self.owner, name)
            return None
