"""Warnings reach stderr even when the application never configured logging.

asynctune's warnings are about safety and lost work (host keys not checked, a trial's results
that could not be kept), so they must be seen. The "asynctune" logger gets one handler, at
WARNING, that prints `asynctune: WARNING: ...` to stderr only when no other handler would see
the record: once the application configures logging (`logging.basicConfig()`, a handler on the
root or the "asynctune" logger, even a NullHandler to silence it), it stays quiet, so nothing is
printed twice. It is Python's own `logging.lastResort` rule, with asynctune's name on the line.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

LOGGER_NAME = "asynctune"


class FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Prints to the current sys.stderr records that no other handler takes."""

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.WARNING)  # StreamHandler.__init__ would fix the stream
        self.setFormatter(logging.Formatter(f"{LOGGER_NAME}: %(levelname)s: %(message)s"))

    @property
    def stream(self) -> IO[str]:  # type: ignore[override]
        return sys.stderr  # looked up on each record: redirections of sys.stderr are followed

    def handle(self, record: logging.LogRecord) -> bool:
        if self._handled_elsewhere(record):
            return False
        return super().handle(record)

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        """Whether a handler other than this one is on the record's way up (as propagate allows)."""
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None  # type: ignore[assignment]
        return False


def install() -> None:
    """Give the package logger its fallback handler (once)."""
    package = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(handler, FallbackHandler) for handler in package.handlers):
        package.addHandler(FallbackHandler())


def warnings_print_themselves() -> bool:
    """Whether the package's warnings reach stderr through the fallback handler (the application
    configured no logging), so that a reporter need not print them again.

    Example:
        >>> warnings_print_themselves()  # in a script that never called logging.basicConfig()
        True
    """
    package = logging.getLogger(LOGGER_NAME)
    fallback = next((h for h in package.handlers if isinstance(h, FallbackHandler)), None)
    if fallback is None or not package.isEnabledFor(logging.WARNING):
        return False
    record = package.makeRecord(LOGGER_NAME, logging.WARNING, __file__, 0, "", (), None)
    return not fallback._handled_elsewhere(record)
