"""`asynctune hosts check`: reach each SSH host and print what it offers."""

from __future__ import annotations

import argparse
import inspect
import json
import os
from typing import Any

from .output import CommandError, make_console, fmt, new_table


def parse_with_hosts_anywhere(parser: argparse.ArgumentParser, argv: Any) -> argparse.Namespace:
    """parser.parse_args, where hosts may also follow an option (`hosts check a --timeout 5 b`):
    argparse takes one run of positionals, and refused `b` as an unrecognized argument."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "hosts", None), list) and not any(e.startswith("-") for e in extra):
        args.hosts += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def hosts_check(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {}
    for option, key, value in (("--known-hosts", "known_hosts", args.known_hosts),
                               ("--ssh-config", "ssh_config", args.ssh_config)):
        if value is not None:
            kwargs[key] = _existing_file(option, value)
    if args.identity:
        kwargs["client_keys"] = [_existing_file("--identity", path) for path in args.identity]
    try:
        from ..executors.ssh.executor import check_hosts
    except ImportError as exc:
        raise CommandError(f"checking hosts needs the SSH executor: {exc} "
                           "(pip install 'asynctune[ssh]')") from None
    # SSHExecutor's option is connect_timeout_s; a check_hosts may also name it timeout.
    timeout_name = "timeout" if "timeout" in inspect.signature(check_hosts).parameters else "connect_timeout_s"
    kwargs[timeout_name] = args.timeout
    from ..executors.ssh.hosts import parse_host_line, read_hosts_file

    try:
        hosts: list[Any] = [parse_host_line(h) if " " in h.strip() else h for h in args.hosts]
        if args.hosts_file:
            hosts += read_hosts_file(_existing_file("--hosts-file", args.hosts_file))
    except ValueError as exc:
        raise CommandError(f"host spec: {exc}") from None
    if not hosts:
        raise CommandError("name at least one HOST, or --hosts-file")
    try:
        reports = check_hosts(hosts, **kwargs)
        if inspect.isawaitable(reports):
            import asyncio

            reports = asyncio.run(_awaited(reports))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    reports = list(reports)
    usable = [bool(r.get("reachable")) and not r.get("reason") for r in reports]
    if args.json:
        for report in reports:
            print(json.dumps(report, default=str))
    else:
        table = new_table(f"{sum(usable)} of {len(reports)} hosts usable")
        for column in ("host", "status", "latency (ms)", "python", "asynctune", "cpus", "gpus", "reason"):
            table.add_column(column, justify="right" if column in ("latency (ms)", "cpus", "gpus") else "left")
        for report, ok in zip(reports, usable):
            status = "[green]ok[/green]" if ok else ("[red]unusable[/red]" if report.get("reachable")
                                                     else "[red]unreachable[/red]")
            table.add_row(str(report.get("host", "")), status, fmt(report.get("latency_ms"), digits=3),
                          fmt(report.get("python")), fmt(report.get("asynctune")), fmt(report.get("cpus")),
                          _gpus(report.get("gpus")), fmt(report.get("reason")))
        make_console().print(table)
    return 0 if reports and all(usable) else 1


def _existing_file(option: str, path: str) -> str:
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded):
        raise CommandError(f"{option} {path}: no such file")
    return expanded


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _gpus(value: Any) -> str:
    """A count, with the models: "2: NVIDIA H100"."""
    if isinstance(value, (list, tuple)):
        names = sorted({str(g.get("name")) for g in value if isinstance(g, dict) and g.get("name")})
        return f"{len(value)}" + (f": {', '.join(names)}" if names else "")
    return fmt(value)
