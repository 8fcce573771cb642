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

from ..core.logs import warnings_print_themselves
from ..core.pareto import front_of
from ..core.space import Space, resolved_items
from ..core.trial import Status, Trial
from ..store.names import error_file
from .callback import Callback
from .decisions import stopped_early

_STATUS_STYLE = {
    Status.RUNNING.value: "green", Status.PENDING.value: "yellow", Status.PAUSED.value: "cyan",
    Status.EARLY_STOPPED.value: "magenta", Status.FINISHED.value: "", Status.ERROR.value: "red",
}


class ConsoleReporter(Callback):
    """Shows the trials as a table while the experiment runs.

    Args:
        metric: The metric whose latest and best values are shown; a list of metrics shows the
            latest value of each and the size of the Pareto front (by last results) instead of
            a best trial.
        mode: "min" or "max", to find the best trial (one per metric for a list).
        space: The search space, to show the sampled hyperparameters as columns.
        verbose: 0 silent, 1 errors and the final table, 2 the live table too (default), 3 also
            a line for each decision and each trial's end as they happen.
        max_rows: Rows shown; running trials come first, then the best.
        plain_interval_s: How often a snapshot is printed when stdout is not a terminal.
        file: Where to write (default sys.stdout).
        time_budget_s: The experiment's time budget, to show how much of it is left.
        num_samples: The trials asked for (times the grid size), to estimate the time left
            from the rate at which trials finish; -1 or None for no estimate.
        max_events: How many of the latest decisions are listed under the table.
        scheduler: The experiment's scheduler: a STOP at its `max_t` is no news (the trial
            finished), one before it is listed as early-stopped.
    """

    def __init__(self, *, metric: str | list[str] | None, mode: str | list[str] | None, space: Space | None = None,
                 verbose: int = 2,
                 max_rows: int = 20, plain_interval_s: float = 30.0, file: IO[str] | None = None,
                 time_budget_s: float | None = None, num_samples: int | None = None, max_events: int = 5,
                 scheduler: Any = None) -> None:
        if verbose not in (0, 1, 2, 3):
            raise ValueError(f"ConsoleReporter: verbose must be 0, 1, 2 or 3, got {verbose=}")
        if max_rows < 1:
            raise ValueError(f"ConsoleReporter: max_rows must be >= 1, got {max_rows=}")
        if max_events < 0:
            raise ValueError(f"ConsoleReporter: max_events must be >= 0, got {max_events=}")
        self.metric, self.mode, self.space = metric, mode, space
        # Several metrics: each gets a column of latest values; there is no single best.
        self.objectives: list[str] = list(metric) if isinstance(metric, list) else []
        if self.objectives:
            self.metric = None
        self.verbose, self.max_rows, self.plain_interval_s = verbose, max_rows, plain_interval_s
        self.time_budget_s = time_budget_s
        self.max_events = max_events
        self.scheduler = scheduler
        self.total_trials = None
        if num_samples is not None and num_samples > 0:
            self.total_trials = num_samples * (space.grid_size if space is not None else 1)
        stream = file or sys.stdout
        self.interactive = stream.isatty()
        self.console = Console(file=stream, highlight=False, soft_wrap=False,
                               width=None if self.interactive else 160)
        self._live: Live | None = None
        self._start = time.time()
        self._last_plain = 0.0
        self._events: list[str] = []  # recent decisions, shown under the table
        self._decision_counts: Counter[str] = Counter()
        self._last_decision: dict[str, str] = {}  # trial_id -> e.g. "early-stopped@4"

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
        if stopped_early(self.scheduler, trial, decision) is False:
            return  # the trial reached max_t: it finished, no news
        verb = _VERBS.get(decision, decision.lower())
        self._decision_counts[verb] += 1
        self._last_decision[trial.trial_id] = f"{verb}@{trial.iteration}"
        if self.max_events:
            line = f"[{format_duration(time.time() - self._start)}] {trial.trial_id} {verb} at iteration {trial.iteration}"
            if detail:
                line += f" ({_shorten(detail, 80)})"
            self._events = (self._events + [line])[-self.max_events:]
        if self.verbose >= 3:
            self._print_line(f"{trial.trial_id} {verb} at iteration {trial.iteration}"
                             + (f" ({_shorten(detail, 80)})" if detail else ""))

    def on_trial_complete(self, trial: Trial) -> None:
        if self.verbose >= 3:
            result = trial.last_result or {}
            values = [f"{m}={format_value(result[m])}" for m in self.objectives or [self.metric] if m and m in result]
            self._print_line(f"{trial.trial_id} {self._outcome(trial)} at iteration {trial.iteration}"
                             + "".join(f", {v}" for v in values))

    def _print_line(self, message: str, style: str = "") -> None:
        if self._live is not None:
            self._live.console.print(Text(message, style=style))
        else:
            self.console.print(message, highlight=False)

    def on_trial_error(self, trial: Trial) -> None:
        if self.verbose >= 1 and not warnings_print_themselves():  # else the same line is on stderr already
            self._print_line(f"trial {trial.trial_id} failed: {trial.error} (see {error_file(trial.path)})", "red")

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        if self._live is not None:
            self._live.update(self.render(trials), refresh=True)
            self._live.stop()
            self._live = None
        elif self.verbose >= 1:
            self.console.print(self.render(trials))

    # Rendering -----------------------------------------------------------------------------------

    def render(self, trials: Sequence[Trial]) -> Group:
        front = self._front(trials) if self.objectives else None  # once for the summary and the table
        return Group(Text(self.summary(trials, front)), self.table(trials, front),
                     *(Text(e, style="dim") for e in self._events))

    def summary(self, trials: Sequence[Trial], front: set[str] | None = None) -> str:
        counts = Counter(self._outcome(t) for t in trials)
        parts = [f"{counts[s]} {s}" for s in _ORDER if counts[s]]
        elapsed = time.time() - self._start
        total = f"{len(trials)}/{self.total_trials}" if self.total_trials else f"{len(trials)}"
        line = f"Trials: {total} ({', '.join(parts) or 'none yet'}) | elapsed {format_duration(elapsed)}"
        left = self._time_left(trials, elapsed)
        if left is not None:
            line += f", {left}"
        best = self._best(trials)
        if best is not None:
            # The same "best" as ExperimentAnalysis.best_result: a trial's best-ever value.
            line += f" | best-ever {self.metric}={best.metric_best:.6g} ({best.trial_id})"
        if self.objectives:
            front = self._front(trials) if front is None else front
            line += f" | Pareto front: {len(front)} trials (by last results)"
        if self._decision_counts:
            line += " | " + ", ".join(f"{n} {verb}" for verb, n in self._decision_counts.items())
        return line

    def _time_left(self, trials: Sequence[Trial], elapsed: float) -> str | None:
        """The budget left, and an estimate from the rate at which trials finish, whichever is known."""
        parts = []
        budget_left = max(0.0, self.time_budget_s - elapsed) if self.time_budget_s else None
        if budget_left is not None:
            parts.append(f"budget left {format_duration(budget_left)}")
        finished = sum(t.status.is_finished for t in trials)
        if self.total_trials and 0 < finished < self.total_trials:
            estimate = elapsed / finished * (self.total_trials - finished)
            if budget_left is None or estimate < budget_left:
                parts.append(f"~{format_duration(estimate)} to go")
        return ", ".join(parts) or None

    def table(self, trials: Sequence[Trial], front: set[str] | None = None) -> Table:
        table = Table(box=box.SIMPLE_HEAD if self.interactive else box.ASCII2, pad_edge=False)
        decisions = bool(self._last_decision)
        shown = self._rows(trials, front)
        hyper_columns = self._hyper_columns_that_fit(trials, shown, decisions)
        for name in ["trial", "status", *(["decision"] if decisions else []), *hyper_columns, "iter", "time (s)"]:
            # who a trial is and what became of it are never cut short; hyperparameter columns give way
            table.add_column(name, justify="right" if name in ("iter", "time (s)") else "left",
                             no_wrap=name in _WHOLE_COLUMNS)
        if self.metric:
            table.add_column(self.metric, justify="right")
            table.add_column(f"best {self.metric}", justify="right")
        for name in self.objectives:
            table.add_column(name, justify="right")
        if front is None:
            front = self._front(trials) if self.objectives else set()
        if self.objectives:
            table.add_column("front", justify="left")
        for trial in shown:
            params = resolved_items(trial.config, self.space) if self.space else {}
            result = trial.last_result or {}
            status = self._outcome(trial)
            row = [trial.trial_id, Text(status, style=_STATUS_STYLE.get(status, ""))]
            if decisions:
                row.append(self._last_decision.get(trial.trial_id, ""))
            row += [format_value(params.get(c)) for c in hyper_columns]
            row += [str(result.get("training_iteration", "")), format_value(result.get("time_total_s"))]
            if self.metric:
                row += [format_value(result.get(self.metric)), format_value(trial.metric_best)]
            if self.objectives:
                row += [format_value(result.get(m)) for m in self.objectives] + ["*" if trial.trial_id in front else ""]
            table.add_row(*row)
        notes = []
        if len(trials) > len(shown):
            notes.append(f"... {len(trials) - len(shown)} more trials not shown")
        left_out = [c for c in self._hyper_columns(trials) if c not in hyper_columns]
        if left_out:
            notes.append(f"columns left out for width: {', '.join(left_out)}")
        if notes:
            table.caption = "; ".join(notes)
        return table

    def _outcome(self, trial: Trial) -> str:
        return trial.status.value

    def _hyper_columns_that_fit(self, trials: Sequence[Trial], shown: Sequence[Trial], decisions: bool) -> list[str]:
        """The hyperparameter columns, leaving out the last ones while the table would be wider than
        the console: the trial, status and decision cells then keep their whole text."""
        columns = self._hyper_columns(trials)
        width = self.console.width

        def cells(values: Sequence[str], header: str) -> int:
            return max([len(header), *(len(v) for v in values)]) + 3  # padding and a rule

        results = [t.last_result or {} for t in shown]
        fixed = 1 + cells([t.trial_id for t in shown], "trial") + cells([self._outcome(t) for t in shown], "status")
        if decisions:
            fixed += cells([self._last_decision.get(t.trial_id, "") for t in shown], "decision")
        fixed += cells([str(r.get("training_iteration", "")) for r in results], "iter")
        fixed += cells([format_value(r.get("time_total_s")) for r in results], "time (s)")
        for metric in [self.metric] if self.metric else self.objectives:
            fixed += cells([format_value(r.get(metric)) for r in results], metric)
        if self.metric:
            fixed += cells([format_value(t.metric_best) for t in shown], f"best {self.metric}")
        params = [resolved_items(t.config, self.space) if self.space else {} for t in shown]
        kept: list[str] = []
        for column in columns:
            fixed += cells([format_value(p.get(column)) for p in params], column)
            if fixed > width:
                break
            kept.append(column)
        return kept

    def _hyper_columns(self, trials: Sequence[Trial]) -> list[str]:
        if not self.space:
            return []
        columns: dict[str, None] = {}
        for trial in trials[:50]:
            columns.update(dict.fromkeys(resolved_items(trial.config, self.space)))
        return list(columns)[:8]

    def _rows(self, trials: Sequence[Trial], front: set[str] | None = None) -> list[Trial]:
        running = [t for t in trials if t.status is Status.RUNNING]
        rest = [t for t in trials if t.status is not Status.RUNNING]
        if self.metric:
            sign = 1 if self.mode == "min" else -1
            rest.sort(key=lambda t: (t.metric_best is None, sign * (t.metric_best or 0.0), t.index))
        elif front:
            rest.sort(key=lambda t: (t.trial_id not in front, t.index))  # the front first
        rows = (running + rest)[: self.max_rows]
        return sorted(rows, key=lambda t: t.index)

    def _front(self, trials: Sequence[Trial]) -> set[str]:
        """The ids of the non-dominated trials by last results, failed ones left out (as the analysis)."""
        modes = self.mode if isinstance(self.mode, list) else [self.mode] * len(self.objectives)
        return {t.trial_id for t in front_of(trials, self.objectives, modes)}

    def _best(self, trials: Sequence[Trial]) -> Trial | None:
        scored = [t for t in trials if t.metric_best is not None and t.status is not Status.ERROR]  # as the analysis
        if not scored or not self.metric:
            return None
        return (min if self.mode == "min" else max)(scored, key=lambda t: t.metric_best)  # type: ignore[arg-type]


_ORDER = [s.value for s in Status]
_WHOLE_COLUMNS = ("trial", "status", "decision")

# How a decision reads in the event lines and counts ("3 stopped, 1 cloned").
_VERBS = {"STOP": "early-stopped", "PAUSE": "paused", "RESUME": "resumed", "MUTATE": "cloned", "PROMOTE": "promoted"}


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_value(value: Any, digits: int = 5) -> str:
    """A table cell: floats with `digits` significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def format_duration(seconds: float) -> str:
    """Seconds as HH:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
