"""The `asynctune` command: look at, plot and resume experiments; check SSH hosts.

    asynctune ls [ROOT]                 experiments under ROOT (default ~/asynctune_results)
    asynctune show DIR                  the best trials as a table and the best config as JSON
                                        (several metrics: the Pareto front)
    asynctune plot DIR                  learning curves and best-so-far as PNGs in DIR/plots
                                        (several metrics: pareto_front.png)
    asynctune resume DIR                continue an experiment whose driver stopped
    asynctune dashboard [DIR]           a live web dashboard of the experiments under DIR
    asynctune hosts check HOST...       can these SSH hosts run trials?

A wrong path or argument prints one line and exits with status 2; `asynctune CMD --help`
explains each command.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import inspect
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import AsynctuneError
from ..store import names
from .hosts import hosts_check, parse_with_hosts_anywhere
from .output import CommandError, make_console, fmt, new_table

DEFAULT_ROOT = "~/asynctune_results"
FAILED_AT_START = "FAILED AT START"  # `ls` status of a run that ended before saving any state
_SCOPES = ("last", "all", "avg", "last-5-avg", "last-10-avg")
DEFAULT_SCOPE = "all"  # analysis.DEFAULT_SCOPE (not imported here: `asynctune --help` stays fast)
_SCOPE_LABELS = {"all": "best-ever", "last": "last", "avg": "mean", "last-5-avg": "mean of last 5",
                 "last-10-avg": "mean of last 10"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parse_with_hosts_anywhere(parser, argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"asynctune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a damaged file found as the command read on: named in the error
        if not isinstance(exc, AsynctuneError):
            raise
        print(f"asynctune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `asynctune ls | head`
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asynctune", description="Look at, plot and resume asynctune experiments; check SSH hosts.",
        epilog="Run 'asynctune COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"asynctune {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ls = commands.add_parser("ls", help="list the experiments under a directory",
                             description="List the experiments under ROOT: status, trials by status, best value.")
    ls.add_argument("root", nargs="?", default=DEFAULT_ROOT, metavar="ROOT",
                    help=f"directory holding experiment directories (default {DEFAULT_ROOT})")
    ls.add_argument("--scope", choices=_SCOPES, default=DEFAULT_SCOPE,
                    help="which value of a trial counts: its best ever (all, the default), last, or a mean")
    ls.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    ls.set_defaults(handler=_ls)

    show = commands.add_parser("show", help="the best trials and the best config of an experiment",
                               description="Show an experiment: its best trials as a table and the best config as JSON; "
                                           "for one run with several metrics, its Pareto front (non-dominated "
                                           "trials by last results) unless --metric names one.")
    show.add_argument("dir", metavar="DIR", help="the experiment directory")
    _metric_options(show)
    show.add_argument("--scope", choices=_SCOPES, default=DEFAULT_SCOPE,
                      help="rank trials by their best value ever (all, the default), last value, or mean")
    show.add_argument("-n", "--top", type=_positive_int, default=10, help="trials shown (default 10)")
    show.add_argument("--json", action="store_true", help="print one JSON object instead")
    show.set_defaults(handler=_show)

    plot = commands.add_parser("plot", help="write PNGs of learning curves and best-so-far",
                               description="Write learning_curves.png (decisions marked) and best_so_far.png, "
                                           "and with --per-trial one PNG per trial; for a run with several "
                                           "metrics, pareto_front.png unless --metric names one. Needs matplotlib.")
    plot.add_argument("dir", metavar="DIR", help="the experiment directory")
    _metric_options(plot)
    plot.add_argument("-o", "--out", help="output directory (default DIR/plots)")
    plot.add_argument("--x", choices=("training_iteration", "time_total_s"), default="training_iteration",
                      help="x axis of the learning curves (default training_iteration)")
    plot.add_argument("--per-trial", action="store_true", help="also write trials/<trial_id>.png for every trial")
    plot.add_argument("--log-y", action=argparse.BooleanOptionalAction, default=None,
                      help="logarithmic y axis (default: when values span over two orders of magnitude)")
    plot.set_defaults(handler=_plot)

    resume = commands.add_parser("resume", help="continue an experiment whose driver stopped",
                                 description="Continue an interrupted experiment: finished trials stay finished, "
                                             "the others restart from their newest checkpoint.")
    resume.add_argument("dir", metavar="DIR", help="the experiment directory")
    resume.add_argument("-v", "--verbose", type=int, choices=(0, 1, 2, 3), help="console output (default: as first run)")
    resume.add_argument("--time-budget-s", type=_positive_float, help="a new time budget in seconds")
    resume.add_argument("--errored", choices=("resume", "restart"),
                        help="run the trials that failed for good (ERROR) again: from their newest checkpoint, or from "
                             "the start (default: they stay failed)")
    resume.set_defaults(handler=_resume)

    trust = commands.add_parser(
        "trust", help="sign a directory made elsewhere with your key, after reviewing it",
        description="Sign the pickles of DIR (an experiment copied from another user or machine, or made by an "
                    "asynctune without signed state) with your key, so resume and load_best_checkpoint load "
                    "them. Unpickling runs code: review DIR first. See docs/security.md.")
    trust.add_argument("dir", metavar="DIR", help="the experiment directory (or any directory of experiments)")
    trust.set_defaults(handler=_trust)

    dashboard = commands.add_parser(
        "dashboard", help="a live web dashboard of experiments",
        description="Serve a read-only web page of the experiments under DIR (or of one experiment), "
                    "updated live while runs write them. Needs asynctune[dashboard].")
    dashboard.add_argument("dir", nargs="?", default=DEFAULT_ROOT, metavar="DIR",
                           help=f"a directory of experiments, or one experiment (default {DEFAULT_ROOT})")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default 127.0.0.1; others can read your experiments otherwise)")
    dashboard.add_argument("--port", type=int, default=8266, help="TCP port (default 8266; 0 picks a free one)")
    dashboard.set_defaults(handler=_dashboard)

    hosts = commands.add_parser("hosts", help="SSH hosts", description="Commands about SSH hosts.")
    host_commands = hosts.add_subparsers(dest="hosts_command", metavar="SUBCOMMAND")
    check = host_commands.add_parser(
        "check", help="check that SSH hosts can run trials",
        description="Connect to each host and report: reachable, Python and asynctune versions, CPUs, GPUs, "
                    "latency. Exit status 1 if any host is unusable.")
    check.add_argument("hosts", nargs="*", metavar="HOST",
                       help="[user@]host[:port], or a hosts file's line in quotes: \"gpu1 python=/opt/venv/bin/python\"")
    check.add_argument("--hosts-file", help="the hosts file SSHExecutor.from_file reads (one host per line, or TOML)")
    check.add_argument("--known-hosts", help="known_hosts file (default: as ssh)")
    check.add_argument("-i", "--identity", action="append", help="private key file (default: as ssh); repeatable")
    check.add_argument("-F", "--ssh-config", help="ssh_config file (default: ~/.ssh/config)")
    check.add_argument("--timeout", type=_positive_float, default=10.0, help="connect timeout in seconds (default 10)")
    check.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    check.set_defaults(handler=hosts_check)
    hosts.set_defaults(handler=lambda args: _usage(hosts))
    return parser


def _metric_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--metric", help="the metric (default: the one the experiment was run with)")
    parser.add_argument("--mode", choices=("min", "max"), help="min or max (default: as the experiment)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# dashboard ---------------------------------------------------------------------------------------


def _dashboard(args: argparse.Namespace) -> int:
    try:
        from ..dashboard import is_loopback, serve
    except ImportError as exc:
        raise CommandError(str(exc)) from None
    import asyncio

    root = os.path.abspath(os.path.expanduser(args.dir))
    if not os.path.isdir(root):
        raise CommandError(f"{args.dir}: no such directory")
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can read these experiments; "
              "prefer the default 127.0.0.1 and an SSH port forward (ssh -L 8266:127.0.0.1:8266 HOST)",
              file=sys.stderr)

    async def serve_forever() -> None:
        async with serve(root, host=args.host, port=args.port) as url:
            print(f"asynctune dashboard of {root} at {url} (Ctrl-C to stop)", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve_forever())
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:  # Ctrl-C is how the dashboard is meant to stop: a success
        pass
    return 0


# ls ----------------------------------------------------------------------------------------------


def _ls(args: argparse.Namespace) -> int:
    from ..analysis.experiment import ExperimentAnalysis, find_experiments

    root = os.path.abspath(os.path.expanduser(args.root))
    if not os.path.isdir(root):
        raise CommandError(f"{args.root}: no such directory")
    rows = []
    for directory in find_experiments(root, failed_at_start=True):
        if not os.path.exists(names.experiment_file(directory)):
            # The run failed before its first trial (see storage.check_name_free): the name is free.
            rows.append({"experiment": os.path.basename(directory), "status": FAILED_AT_START, "trials": 0,
                         "path": directory, "start_time": os.path.getmtime(directory)})
            continue
        try:
            rows.append(ExperimentAnalysis(directory, typed_configs=False).summary(scope=args.scope))
        except ValueError as exc:  # a torn experiment.json: say so and go on
            rows.append({"experiment": os.path.basename(directory), "status": f"unreadable ({exc})",
                         "trials": 0, "path": directory})
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    if not rows:
        print(f"no experiments in {root}")
        return 0
    table = new_table(f"{len(rows)} experiment{'s' if len(rows) != 1 else ''} in {root}")
    best_column = f"best ({_SCOPE_LABELS[args.scope]})"
    for column in ("experiment", "status", "trials", "metric", best_column, "best trial", "started"):
        table.add_column(column, justify="right" if column == best_column else "left")
    for row in rows:
        table.add_row(row["experiment"], row["status"], _trial_counts(row),
                      _objectives_text(row.get("metric"), row.get("mode")),
                      fmt(row.get("best")) if "pareto_front" not in row else f"front of {row['pareto_front']}",
                      row.get("best_trial_id") or "", _when(row.get("start_time")))
    make_console().print(table)
    return 0


def _objectives_text(metric: Any, mode: Any) -> str:
    if not metric:
        return ""
    if isinstance(metric, list):  # several objectives
        modes = mode if isinstance(mode, list) else [mode] * len(metric)
        return ", ".join(f"{m} ({d})" for m, d in zip(metric, modes))
    return f"{metric} ({mode})"


def _trial_counts(row: dict[str, Any]) -> str:
    from ..core.trial import Status

    parts = [f"{row[status.value]} {status.value.lower()}" for status in Status if row.get(status.value)]
    return f"{row.get('trials', 0)}" + (f" ({', '.join(parts)})" if parts else "")


# show --------------------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    from ..store.layout import flatten_config
    from ..reporting.console import format_duration
    from ..core.trial import Status

    analysis = _analysis(args.dir)
    if args.metric is None and len(analysis.objectives) > 1:
        return _show_front(analysis, args)
    metric = args.metric or analysis.default_metric
    if args.metric is not None:
        _check_reported(analysis, args.metric)
    mode = args.mode or dict(analysis.objectives).get(metric) or (None if args.metric else analysis.default_mode)
    if metric is not None and mode is None:
        raise CommandError("--metric needs --mode (min or max): the experiment was run without one")
    ranked = _ranked(analysis, metric, mode, args.scope)
    best = next((t for t, value in ranked if value is not None and t.status is not Status.ERROR), None)  # as the analysis
    best_value = next((value for t, value in ranked if t is best), None)
    if args.json:
        print(json.dumps({
            "experiment": analysis.name, "path": analysis.experiment_dir, "status": analysis.status,
            "metric": metric, "mode": mode, "scope": args.scope,
            "best_trial_id": best.trial_id if best else None, "best_config": best.config if best else None,
            "best_result": analysis.get_best_result(metric, mode, args.scope) if best else None,
            "best_checkpoint": analysis.get_best_checkpoint(metric, mode, args.scope) if best else None,
            "trials": [{"trial_id": t.trial_id, "status": t.status.value, "value": v, "config": t.config,
                        "iterations": t.iteration} for t, v in ranked[: args.top]],
        }, indent=1, default=str))
        return 0
    console = make_console()
    state = analysis.state
    console.print(f"[bold]{analysis.name}[/bold]  {analysis.status}  {analysis.experiment_dir}")
    details = [f"{len(analysis.trials)} trials", f"searcher {state.get('searcher', '?')}",
               f"scheduler {state.get('scheduler', '?')}"]
    if state.get("time_used_s"):
        details.append(f"ran {format_duration(float(state['time_used_s']))}")
    console.print(", ".join(details), highlight=False)
    if metric is None:
        console.print("run without metric=: pass --metric and --mode to rank the trials")
    columns = _varying_config_keys([t.config for t, _ in ranked])
    title = f"best {min(args.top, len(ranked))} of {len(ranked)} trials by {_SCOPE_LABELS[args.scope]} {metric} " \
        f"({mode}, scope={args.scope})" \
        if metric else f"{min(args.top, len(ranked))} of {len(ranked)} trials"
    table = new_table(title)
    value_column = f"{_SCOPE_LABELS[args.scope]} {metric}"
    for column in ["#", "trial", "status", *columns, "iter"] + ([value_column] if metric else []):
        table.add_column(column, justify="left" if column in ("trial", "status") or column in columns else "right")
    for rank, (trial, value) in enumerate(ranked[: args.top], start=1):
        flat = flatten_config(trial.config)
        table.add_row(str(rank), trial.trial_id, trial.status.value,
                      *(fmt(flat.get(c)) for c in columns),
                      str(trial.iteration), *([fmt(value)] if metric else []))
    console.print(table)
    if best is not None:
        checkpoint = analysis.get_best_checkpoint(metric, mode, args.scope)
        console.print(f"best trial {best.trial_id}: {_SCOPE_LABELS[args.scope]} {metric}={fmt(best_value)}"
                      + (f", checkpoint {checkpoint}" if checkpoint else ""), highlight=False)
        console.print("best config:")
        print(json.dumps(best.config, indent=2, default=str))
    return 0


def _check_reported(analysis: Any, metric: str) -> None:
    """--metric must name a key some trial reported: a misspelt one would rank nothing, silently."""
    if not analysis.trials:
        return
    reported: dict[str, None] = {}
    for trial in analysis.trials:
        reported.update(dict.fromkeys(trial.last_result or {}))
    if metric in reported:
        return
    for trial in analysis.trials:  # a metric reported on some results only (at validation steps)
        for result in analysis.trial_results(trial.trial_id):
            if metric in result:
                return
            reported.update(dict.fromkeys(result))
    close = difflib.get_close_matches(metric, list(reported), n=1)
    raise CommandError(f"--metric {metric!r}: no trial of {analysis.experiment_dir} reported it"
                       + (f" (did you mean {close[0]!r}?)" if close else "")
                       + f"; they reported: {', '.join(reported)}")


def _show_front(analysis: Any, args: argparse.Namespace) -> int:
    """An experiment with several metrics has no best trial: show its Pareto front (by last results)."""
    from ..reporting.console import format_duration
    from ..store.layout import flatten_config

    objectives = analysis.objectives
    front = sorted(analysis.pareto_front(), key=lambda t: [_front_key(t, m, d) for m, d in objectives])
    if args.json:
        print(json.dumps({
            "experiment": analysis.name, "path": analysis.experiment_dir, "status": analysis.status,
            "metric": [m for m, _ in objectives], "mode": [d for _, d in objectives], "trials": len(analysis.trials),
            "pareto_front": [{"trial_id": t.trial_id, "status": t.status.value, "config": t.config,
                              "iterations": t.iteration, "values": {m: (t.last_result or {}).get(m) for m, _ in objectives}}
                             for t in front],
        }, indent=1, default=str))
        return 0
    console = make_console()
    state = analysis.state
    console.print(f"[bold]{analysis.name}[/bold]  {analysis.status}  {analysis.experiment_dir}")
    ran = f", ran {format_duration(float(state['time_used_s']))}" if state.get("time_used_s") else ""
    console.print(f"{len(analysis.trials)} trials, searcher {state.get('searcher', '?')}, "
                  f"scheduler {state.get('scheduler', '?')}{ran}", highlight=False)
    columns = _varying_config_keys([t.config for t in analysis.trials])
    shown = front[: args.top]
    table = new_table(f"Pareto front: {len(front)} of {len(analysis.trials)} trials are non-dominated by their last "
                   f"results ({', '.join(f'{m} {d}' for m, d in objectives)})"
                   + (f"; {len(shown)} shown (--top)" if len(shown) < len(front) else ""))
    for column in ["trial", "status", *columns, "iter", *(m for m, _ in objectives)]:
        table.add_column(column, justify="left" if column in ("trial", "status") or column in columns else "right")
    for trial in shown:
        flat = flatten_config(trial.config)
        table.add_row(trial.trial_id, trial.status.value,
                      *(fmt(flat.get(c)) for c in columns), str(trial.iteration),
                      *(fmt((trial.last_result or {}).get(m)) for m, _ in objectives))
    console.print(table)
    console.print("rank by one metric with --metric NAME; asynctune plot draws the front", highlight=False)
    return 0


def _front_key(trial: Any, metric: str, mode: str) -> float:
    value = float((trial.last_result or {}).get(metric))
    return value if mode == "min" else -value


def _ranked(analysis: Any, metric: str | None, mode: str | None, scope: str) -> list[tuple[Any, float | None]]:
    """Trials with their score, best first; trials without a value of the metric last."""
    if metric is None or mode is None:
        return [(t, None) for t in analysis.trials]
    scored = []
    for trial in analysis.trials:
        try:
            value = analysis._score(trial, metric, mode, scope)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        scored.append((trial, value))
    sign = 1 if mode == "min" else -1
    return sorted(scored, key=lambda tv: (tv[1] is None, sign * tv[1] if tv[1] is not None else 0.0, tv[0].index))


def _varying_config_keys(configs: Sequence[dict[str, Any]], limit: int = 8) -> list[str]:
    """The config keys whose values differ between trials: the searched hyperparameters."""
    from ..store.layout import flatten_config

    flats = [flatten_config(c) for c in configs]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    varying = [k for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1]
    return (varying or keys)[:limit]


# plot --------------------------------------------------------------------------------------------


def _plot(args: argparse.Namespace) -> int:
    analysis = _analysis(args.dir)
    try:
        from ..analysis.plot import plot_experiment

        paths = plot_experiment(analysis.experiment_dir, metric=args.metric, mode=args.mode, out_dir=args.out,
                                x=args.x, per_trial=args.per_trial, log_y=args.log_y)
    except (ImportError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write the plots: {exc}") from None
    shown = paths if len(paths) <= 5 else paths[:2] + [f"... and {len(paths) - 2} per-trial plots in "
                                                       f"{os.path.dirname(paths[2])}"]
    for path in shown:
        print(path)
    return 0


# resume ------------------------------------------------------------------------------------------


def _trust(args: argparse.Namespace) -> int:
    from ..store.signing import key_file, trust_directory

    try:
        signed = trust_directory(args.dir)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(f"signed {len(signed)} file(s) under {os.path.abspath(args.dir)} with {key_file()}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    directory = _experiment_dir(args.dir, resumable=True)
    try:
        from ..api import resume
    except ImportError as exc:
        raise CommandError(f"this asynctune has no resume(): {exc}") from None
    kwargs: dict[str, Any] = {}
    if args.verbose is not None:
        kwargs["verbose"] = args.verbose
    if args.time_budget_s is not None:
        kwargs["time_budget_s"] = args.time_budget_s
    if args.errored is not None:
        kwargs["errored"] = args.errored
    accepted = inspect.signature(resume).parameters
    for name in list(kwargs):
        if name not in accepted:
            raise CommandError(f"this asynctune's resume() does not take {name}=")
    from ..errors import TrialsFailed, UnsafeFileError
    from ..store.lock import ExperimentLocked

    try:
        analysis = resume(directory, **kwargs)
    except (ValueError, UnsafeFileError, ExperimentLocked) as exc:  # ExperimentLocked: another driver runs it now
        raise CommandError(str(exc)) from None
    except TrialsFailed as exc:  # the experiment ran and was saved: say so in one line
        print(f"asynctune resume: {exc}", file=sys.stderr)
        return 1
    best = None
    if len(analysis.objectives) > 1:
        print(f"Pareto front: {len(analysis.pareto_front())} of {len(analysis.trials)} trials "
              f"(asynctune show {analysis.experiment_dir})")
        return 0
    try:
        best = analysis.best_trial
    except ValueError:
        pass  # run without a metric
    if best is not None:
        print(f"best trial {best.trial_id}: {json.dumps(best.config, default=str)}")
    return 0


# hosts check -------------------------------------------------------------------------------------


# Shared ------------------------------------------------------------------------------------------


def _experiment_dir(path: str, *, resumable: bool = False) -> str:
    """`path` as an experiment directory; `resumable`: one with a run_spec.pkl will do too (resume
    rebuilds an experiment.json that was deleted from the journal and the trial directories)."""
    directory = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{path}: no such directory")
    there = os.path.lexists(names.experiment_file(directory))  # a damaged one too: the reader names what is wrong
    if not there and not (resumable and os.path.isfile(names.run_spec_file(directory))):
        hint = ""
        if any(names.is_experiment_dir(os.path.join(directory, e)) for e in _subdirs(directory)):
            hint = f"; it holds experiments: see 'asynctune ls {path}'"
        raise CommandError(f"{path}: not an asynctune experiment directory (no experiment.json){hint}")
    return directory


def _subdirs(directory: str) -> list[str]:
    try:
        return [e.name for e in os.scandir(directory) if e.is_dir()]
    except OSError:
        return []


def _analysis(path: str) -> Any:
    from ..analysis.experiment import ExperimentAnalysis

    directory = _experiment_dir(path)
    try:
        return ExperimentAnalysis(directory, typed_configs=False)  # shown, never unpickled
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _when(timestamp: Any) -> str:
    if not isinstance(timestamp, (int, float)):
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
