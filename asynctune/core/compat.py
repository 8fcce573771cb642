"""Python 3.10 support: TaskGroup and timeout arrived in asyncio with 3.11."""

from __future__ import annotations

import asyncio
import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, timeout
else:  # pragma: no cover - exercised on 3.10 only
    from taskgroup import TaskGroup, timeout

TimeoutErrors = (TimeoutError, asyncio.TimeoutError)

__all__ = ["TaskGroup", "TimeoutErrors", "timeout"]
