"""Slow hosts: a WARNING naming a host whose trials take far longer per result than the
other hosts' (a host at 300 ms with loss, a thermally throttled GPU, a noisy neighbour).

Nothing is moved: a speculative restart of the slow host's trials elsewhere is not done (yet).
The comparison is of the median seconds per result over each host's recent results, so it
holds when the trials are alike; trials of very different cost on different hosts can look
like a straggler, and the message says what was compared.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque

logger = logging.getLogger(__name__)


class StragglerWatch:
    """Per host, the seconds per result of its recent results; warns once per slow host.

    Example:
        >>> watch = StragglerWatch(factor=3.0, min_results=10)
        >>> for _ in range(10):
        ...     watch.observe("fast", 0.1); watch.observe("slow", 1.0)
        >>> watch.warned
        {'slow'}
    """

    def __init__(self, factor: float = 3.0, min_results: int = 10, window: int = 50) -> None:
        if factor <= 1:
            raise ValueError(f"StragglerWatch: factor must be > 1, got {factor=}")
        self.factor, self.min_results = factor, min_results
        self._seconds: dict[str, deque[float]] = {}
        self._window = window
        self._since_check = 0
        self.warned: set[str] = set()

    def observe(self, host: str, seconds_per_result: float) -> None:
        recent = self._seconds.get(host)
        if recent is None:
            recent = self._seconds[host] = deque(maxlen=self._window)
        recent.append(seconds_per_result)
        self._since_check += 1
        if self._since_check >= self.min_results and len(self._seconds) > 1:
            self._since_check = 0
            self._check()

    def _check(self) -> None:
        medians = {h: statistics.median(s) for h, s in self._seconds.items() if len(s) >= self.min_results}
        for host, median in medians.items():
            others = [m for h, m in medians.items() if h != host]
            if host in self.warned or not others:
                continue
            typical = statistics.median(others)
            if typical > 0 and median > self.factor * typical:
                self.warned.add(host)
                logger.warning("SSHExecutor: host %s is slow: its trials take %.3g s per result (median of its last "
                               "%d), the other hosts' %.3g s (%.1fx); its trials are not moved (no speculative "
                               "restart)", host, median, len(self._seconds[host]), typical, median / typical)
