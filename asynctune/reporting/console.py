"""The live console view: a table of trials, refreshed at a bounded rate.

On a terminal it redraws in place (rich's Live display) at most twice a second. When stdout is
a pipe or a file it prints a plain snapshot every `plain_interval_s` and the final table, so
logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..space import Space, resolved_items
from ..trial import Status, Trial
from .callback import Callback

_STATUS_STYLE = {
    Status.RUNNING: "green", Status.PENDING: "yellow", Status.PAUSED: "cyan",
    Status.TERMINATED: "", Status.ERROR: "red",
}


class ConsoleReporter(Callback):
    """Shows the trials as a table while the experiment runs.

    Args:
        metric: The metric whose latest and best values are shown.
        mode: "min" or "max", to find the best trial.
        space: The search space, to show the sampled hyperparameters as columns.
        verbose: 0 silent, 1 errors and the final table, 2 the live table too (default).
        max_rows: Rows shown; running trials come first, then the best.
        plain_interval_s: How often a snapshot is printed when stdout is not a terminal.
        file: Where to write (default sys.stdout).
    """

    def __init__(self, *, metric: str | None, mode: str | None, space: Space | None = None, verbose: int = 2,
                 max_rows: int = 20, plain_interval_s: float = 30.0, file: IO[str] | None = None,
                 time_budget_s: float | None = None) -> None:
        self.metric, self.mode, self.space = metric, mode, space
        self.verbose, self.max_rows, self.plain_interval_s = verbose, max_rows, plain_interval_s
        self.time_budget_s = time_budget_s
        stream = file or sys.stdout
        self.interactive = stream.isatty()
        self.console = Console(file=stream, highlight=False, soft_wrap=False,
                               width=None if self.interactive else 140)
        self._live: Live | None = None
        self._start = time.time()
        self._last_plain = 0.0
        self._events: list[str] = []  # recent decisions, shown under the table

    # Callback ------------------------------------------------------------------------------------

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self._start = time.time()
        self._dir = experiment_dir
        if self.verbose >= 1:
            self.console.print(f"asynctune: experiment directory {experiment_dir}")
        if self.verbose >= 2 and self.interactive:
            self._live = Live(console=self.console, auto_refresh=False, transient=False)
            self._live.start()

    def on_tick(self, trials: Sequence[Trial]) -> None:
        if self.verbose < 2:
            return
        if self._live is not None:
            self._live.update(self.render(trials), refresh=True)
        elif time.time() - self._last_plain >= self.plain_interval_s:
            self._last_plain = time.time()
            self.console.print(self.render(trials))

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        line = f"{trial.trial_id}: {decision} at iteration {trial.iteration}" + (f" ({detail})" if detail else "")
        self._events = (self._events + [line])[-5:]

    def on_trial_error(self, trial: Trial) -> None:
        if self.verbose >= 1:
            message = f"trial {trial.trial_id} failed: {trial.error} (see {trial.path}/error.txt)"
            if self._live is not None:
                self._live.console.print(Text(message, style="red"))
            else:
                self.console.print(message)

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        if self._live is not None:
            self._live.update(self.render(trials), refresh=True)
            self._live.stop()
            self._live = None
        elif self.verbose >= 1:
            self.console.print(self.render(trials))

    # Rendering -----------------------------------------------------------------------------------

    def render(self, trials: Sequence[Trial]) -> Group:
        return Group(Text(self.summary(trials)), self.table(trials), *(Text(e, style="dim") for e in self._events))

    def summary(self, trials: Sequence[Trial]) -> str:
        counts = Counter(t.status for t in trials)
        parts = [f"{counts[s]} {s.value}" for s in Status if counts[s]]
        elapsed = time.time() - self._start
        line = f"Trials: {len(trials)} ({', '.join(parts) or 'none yet'}) | elapsed {_duration(elapsed)}"
        if self.time_budget_s:
            line += f", budget left {_duration(max(0.0, self.time_budget_s - elapsed))}"
        best = self._best(trials)
        if best is not None:
            line += f" | best {self.metric}={best.metric_best:.6g} ({best.trial_id})"
        return line

    def table(self, trials: Sequence[Trial]) -> Table:
        table = Table(box=box.SIMPLE_HEAD if self.interactive else box.ASCII2, pad_edge=False)
        hyper_columns = self._hyper_columns(trials)
        for name in ["trial", "status", *hyper_columns, "iter", "time (s)"]:
            table.add_column(name, justify="right" if name in ("iter", "time (s)") else "left")
        if self.metric:
            table.add_column(self.metric, justify="right")
            table.add_column(f"best {self.metric}", justify="right")
        shown = self._rows(trials)
        for trial in shown:
            params = resolved_items(trial.config, self.space) if self.space else {}
            result = trial.last_result or {}
            row = [trial.trial_id, Text(trial.status.value, style=_STATUS_STYLE[trial.status])]
            row += [_fmt(params.get(c)) for c in hyper_columns]
            row += [str(result.get("training_iteration", "")), _fmt(result.get("time_total_s"))]
            if self.metric:
                row += [_fmt(result.get(self.metric)), _fmt(trial.metric_best)]
            table.add_row(*row)
        if len(trials) > len(shown):
            table.caption = f"... {len(trials) - len(shown)} more trials not shown"
        return table

    def _hyper_columns(self, trials: Sequence[Trial]) -> list[str]:
        if not self.space:
            return []
        columns: dict[str, None] = {}
        for trial in trials[:50]:
            columns.update(dict.fromkeys(resolved_items(trial.config, self.space)))
        return list(columns)[:8]

    def _rows(self, trials: Sequence[Trial]) -> list[Trial]:
        running = [t for t in trials if t.status is Status.RUNNING]
        rest = [t for t in trials if t.status is not Status.RUNNING]
        if self.metric:
            sign = 1 if self.mode == "min" else -1
            rest.sort(key=lambda t: (t.metric_best is None, sign * (t.metric_best or 0.0), t.index))
        rows = (running + rest)[: self.max_rows]
        return sorted(rows, key=lambda t: t.index)

    def _best(self, trials: Sequence[Trial]) -> Trial | None:
        scored = [t for t in trials if t.metric_best is not None]
        if not scored or not self.metric:
            return None
        return (min if self.mode == "min" else max)(scored, key=lambda t: t.metric_best)  # type: ignore[arg-type]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
