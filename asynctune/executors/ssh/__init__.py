"""Trials on SSH hosts: one asyncssh connection per host, the same worker as local runs.

    python -m asynctune.executors.ssh check gpu1 alice@gpu2:2222
"""

from .executor import SSHExecutor, check_hosts, check_hosts_async, format_check
from .hosts import Host, parse_hosts, read_hosts_file

__all__ = ["Host", "SSHExecutor", "check_hosts", "check_hosts_async", "format_check", "parse_hosts",
           "read_hosts_file"]
