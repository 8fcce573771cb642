"""Ray's progress reporters (`tune.CLIReporter`, `tune.ProgressReporter`): a plain table of the
trials with the metric and parameter columns the script chose, printed by an asynctune Callback."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import asynctune as _at
from asynctune.core.trial import Status
from asynctune.reporting.console import format_duration, format_value

_AUTO_METRICS = ("training_iteration", "time_total_s")


class ProgressReporter:
    """Ray's reporter interface: `should_report(trials, done)` says when, `report(trials, done,
    *sys_info)` prints. Subclass it (or CLIReporter) to change either."""

    def setup(self, start_time: float | None = None, total_samples: int | None = None, metric: str | None = None,
              mode: str | None = None, **kwargs: Any) -> None: ...

    def should_report(self, trials: list[Any], done: bool = False) -> bool:
        return True

    def report(self, trials: list[Any], done: bool, *sys_info: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement report(trials, done, *sys_info)")


class CLIReporter(ProgressReporter):
    """Ray's `tune.CLIReporter`: a table of trials every `max_report_frequency` seconds and at the end.

    Example:
        >>> reporter = tune.CLIReporter(metric_columns=["loss", "accuracy", "training_iteration"],
        ...                             parameter_columns=["lr", "batch_size"], max_report_frequency=10)
        >>> tune.Tuner(train, run_config=tune.RunConfig(progress_reporter=reporter), ...)

    When a reporter is given, asynctune's own live table is off; the reporter's table lists each
    trial's status, the parameter columns (default: every sampled one) and the metric columns
    (default: the metric, `training_iteration` and `time_total_s`), then the errors. Columns may
    be lists or dicts {key: header}. `print_intermediate_tables=False` prints the final table only.
    """

    def __init__(self, metric_columns: Sequence[str] | Mapping[str, str] | None = None,
                 parameter_columns: Sequence[str] | Mapping[str, str] | None = None,
                 total_samples: int | None = None, max_progress_rows: int = 20, max_error_rows: int = 20,
                 max_column_length: int = 20, max_report_frequency: float = 5, infer_limit: int = 3,
                 print_intermediate_tables: bool | None = None, metric: str | None = None, mode: str | None = None,
                 sort_by_metric: bool = False, **_: Any) -> None:
        for name, value in (("max_progress_rows", max_progress_rows), ("max_error_rows", max_error_rows),
                            ("max_column_length", max_column_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CLIReporter: {name} must be an integer >= 1, got {name}={value!r}")
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"CLIReporter: mode must be 'min' or 'max', got mode={mode!r}")
        self._metric_columns = _as_columns("metric_columns", metric_columns)
        self._parameter_columns = _as_columns("parameter_columns", parameter_columns)
        self._explicit_metrics = metric_columns is not None
        self.max_progress_rows, self.max_error_rows = max_progress_rows, max_error_rows
        self.max_column_length = max_column_length
        self.max_report_frequency = max_report_frequency
        self.print_intermediate_tables = print_intermediate_tables
        self._metric, self._mode, self._sort_by_metric = metric, mode, sort_by_metric
        self._total_samples = total_samples
        self._start = time.time()
        self._last_report = 0.0

    def setup(self, start_time: float | None = None, total_samples: int | None = None, metric: str | None = None,
              mode: str | None = None, **kwargs: Any) -> None:
        self._start = start_time or self._start
        self._total_samples = self._total_samples or total_samples
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if self._metric and not self._explicit_metrics and self._metric not in self._metric_columns:
            self._metric_columns = {self._metric: self._metric, **self._metric_columns}

    def add_metric_column(self, metric: str, representation: str | None = None) -> None:
        if metric in self._metric_columns:
            raise ValueError(f"CLIReporter: the metric column {metric!r} is there already")
        self._metric_columns[metric] = representation or metric

    def add_parameter_column(self, parameter: str, representation: str | None = None) -> None:
        if parameter in self._parameter_columns:
            raise ValueError(f"CLIReporter: the parameter column {parameter!r} is there already")
        self._parameter_columns[parameter] = representation or parameter

    def should_report(self, trials: list[Any], done: bool = False) -> bool:
        if self.print_intermediate_tables is False and not done:
            return False
        if done or time.time() - self._last_report >= self.max_report_frequency:
            self._last_report = time.time()
            return True
        return False

    def report(self, trials: list[Any], done: bool, *sys_info: Any) -> None:
        print(self._progress_str(trials, done, *sys_info), flush=True)

    def _progress_str(self, trials: list[Any], done: bool, *sys_info: Any) -> str:
        counts = Counter(trial.status.value for trial in trials)
        lines = ["== Status ==", f"Current time: {time.strftime('%Y-%m-%d %H:%M:%S')} "
                 f"(running for {format_duration(time.time() - self._start)})", *map(str, sys_info)]
        total = f" of {self._total_samples}" if self._total_samples else ""
        lines.append(f"Number of trials: {len(trials)}{total} ("
                     + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + ")")
        lines.extend(self._table(self._rows_shown(trials)))
        errored = [trial for trial in trials if trial.status is Status.ERROR]
        if errored:
            lines.append(f"Number of errored trials: {len(errored)}")
            lines.extend(f"{trial.trial_id}: {str(trial.error or '')[:200]}" for trial in errored[:self.max_error_rows])
        return "\n".join(lines) + "\n"

    def _rows_shown(self, trials: list[Any]) -> list[Any]:
        if self._sort_by_metric and self._metric and self._mode:
            def key(trial: Any) -> float:
                value = trial.metric_value(self._metric)
                if value is None:
                    return float("inf")
                return value if self._mode == "min" else -value
            trials = sorted(trials, key=key)
        return trials[:self.max_progress_rows]

    def _table(self, trials: list[Any]) -> list[str]:
        parameters = self._parameter_columns or {key: key for key in _sampled_keys(trials)}
        metrics = dict(self._metric_columns)
        for key in _AUTO_METRICS if not self._explicit_metrics else ():
            metrics.setdefault(key, {"training_iteration": "iter", "time_total_s": "total time (s)"}[key])
        header = ["Trial name", "status", *parameters.values(), *metrics.values()]
        rows = [[trial.trial_id, trial.status.value,
                 *(format_value(_lookup(trial.config, key)) for key in parameters),
                 *(format_value((trial.last_result or {}).get(key, "")) for key in metrics)] for trial in trials]
        cells = [[str(cell)[:self.max_column_length] for cell in row] for row in [header, *rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        return [" | ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]


JupyterNotebookReporter = CLIReporter  # no notebook widgets: the same plain table


class ReporterCallback(_at.Callback):
    """Drives a Ray progress reporter from asynctune's hooks."""

    def __init__(self, reporter: ProgressReporter, *, metric: str | None, mode: str | None,
                 num_samples: int | None) -> None:
        self.reporter = reporter
        self._setup = dict(metric=metric, mode=mode, total_samples=num_samples)

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Any]) -> None:
        self.reporter.setup(start_time=time.time(), **self._setup)

    def on_tick(self, trials: Sequence[Any]) -> None:
        if self.reporter.should_report(list(trials), done=False):
            self.reporter.report(list(trials), False)

    def on_experiment_end(self, trials: Sequence[Any]) -> None:
        if self.reporter.should_report(list(trials), done=True):
            self.reporter.report(list(trials), True)
        sys.stdout.flush()


def check_reporter(reporter: Any) -> None:
    if reporter is not None and not isinstance(reporter, ProgressReporter):
        raise ValueError(f"progress_reporter must be a tune.CLIReporter or another tune.ProgressReporter, "
                         f"got {reporter!r}")


def _as_columns(name: str, columns: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    if columns is None:
        return {}
    if isinstance(columns, Mapping):
        return {str(key): str(header) for key, header in columns.items()}
    if isinstance(columns, str) or not all(isinstance(column, str) for column in columns):
        raise ValueError(f"CLIReporter: {name} must be a list of names or a dict {{name: header}}, got {columns!r}")
    return {column: column for column in columns}


def _sampled_keys(trials: list[Any]) -> list[str]:
    """The config keys whose values differ between trials (Ray shows the sampled ones)."""
    keys: list[str] = []
    for trial in trials:
        keys.extend(key for key in trial.config if key not in keys)
    return [key for key in keys if len({repr(_lookup(t.config, key)) for t in trials}) > 1 or len(trials) == 1]


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    """A config value by key, nested keys as "a/b" (Ray's column names)."""
    value: Any = config
    for part in key.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    return value
