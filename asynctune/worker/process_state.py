"""What a trial may change in its worker process that would leak into the next trial.

A worker runs trial after trial. A trial that lowers a resource limit (RLIMIT_AS), changes
directory, sets an environment variable, installs a signal handler or changes the umask would
hand that to every later trial on the worker. The worker takes `process_state()` before each
trial and compares after it; when anything changed, it tells the driver (the "changed" note of
its "done" or "error" message) and the driver retires it: the next trial gets a fresh process.
"""

from __future__ import annotations

import os
import signal
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

_RLIMITS = sorted(name for name in dir(resource) if name.startswith("RLIMIT_")) if resource else []
_RLIMIT_IDS = [(name, getattr(resource, name)) for name in _RLIMITS]
_SIGNALS = [(f"handler of {signal.Signals(s).name}", s) for s in signal.valid_signals()
            if s not in (signal.SIGKILL, signal.SIGSTOP) and s in signal.Signals._value2member_map_]


def process_state() -> dict[str, Any]:
    """The process's limits, directory, environment, Python signal handlers and umask."""
    state: dict[str, Any] = {}
    for name, rlimit in _RLIMIT_IDS:
        try:
            state[name] = resource.getrlimit(rlimit)
        except (OSError, ValueError):
            pass
    try:
        state["cwd"] = os.getcwd()
    except OSError:  # its directory was removed
        state["cwd"] = None
    # os.environ's own bytes (no decoding of every variable): 100 times faster than a copy of it.
    state["environment"] = dict(getattr(os.environ, "_data", os.environ))
    for name, signum in _SIGNALS:
        try:
            state[name] = signal.getsignal(signum)
        except (ValueError, OSError):
            pass
    mask = os.umask(0o077)
    os.umask(mask)
    state["umask"] = mask
    return state


def changed_state(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The names of what differs ("RLIMIT_AS", "cwd", "environment: FOO", "handler of SIGTERM", "umask")."""
    if before == after:
        return []
    changed = []
    for key in before.keys() | after.keys():
        if key == "environment":
            old, new = before.get(key, {}), after.get(key, {})
            changed += [f"environment: {os.fsdecode(name)}" for name in sorted(old.keys() | new.keys())
                        if old.get(name) != new.get(name)]
        elif before.get(key) != after.get(key):
            changed.append(key)
    return sorted(changed)
