"""Python 3.10 support: TaskGroup, timeout and exception groups arrived with 3.11."""

from __future__ import annotations

import asyncio
import builtins
import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, timeout
    BaseExceptionGroup = builtins.BaseExceptionGroup
else:  # pragma: no cover - exercised on 3.10 only
    from exceptiongroup import BaseExceptionGroup  # taskgroup's own dependency
    from taskgroup import TaskGroup, timeout

TimeoutErrors = (TimeoutError, asyncio.TimeoutError)

__all__ = ["BaseExceptionGroup", "TaskGroup", "TimeoutErrors", "timeout"]
