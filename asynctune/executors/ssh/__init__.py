"""Trials on SSH hosts: one asyncssh connection per host, the same worker as local runs.

    python -m asynctune.executors.ssh check gpu1 alice@gpu2:2222

Names load on first use, so reading a hosts file (hosts.py) needs no asyncssh.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "SSHExecutor": "executor", "check_hosts": "executor", "check_hosts_async": "executor", "format_check": "executor",
    "Host": "hosts", "parse_hosts": "hosts", "read_hosts_file": "hosts",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'asynctune.executors.ssh' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = list(_WHERE)
