"""What the dashboard reads: experiment directories under one root, read live and incrementally.

Only JSON files are read (experiment.json, result.jsonl or a simulation's results.jsonl,
decisions.jsonl), never a pickle. Every name that comes from a request is checked against what
is on disk before a path is built from it, and every path must stay inside the root, so an id like "../x" or a symlink out of the root is
refused as "not found"; a file or trial directory of an experiment that is a link out of that
experiment is refused too (store/paths.py).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

from ..analysis.experiment import ExperimentAnalysis
from ..store.layout import EXPERIMENT_FILE, RESULTS_FILE, flatten_config, group_by_trial
from ..core.objectives import as_float
from ..store.names import decisions_file, experiment_file, is_experiment_dir, result_file, results_file, trial_dir
from ..store.jsonl import JsonlTail as StoreJsonlTail
from ..store.paths import LinkOutside, inside, is_plain_name
from ..core.trial import Status


class NotFound(LookupError):
    """No such experiment or trial under the root (or the name points outside it)."""


class JsonlTail(StoreJsonlTail):
    """The store's JSONL tail (store/jsonl.py), served: a file that leads outside its experiment
    is NotFound (the page gets a 404, never the file)."""

    def read(self) -> list[dict[str, Any]]:
        try:
            return super().read()
        except LinkOutside:
            raise NotFound(f"{os.path.basename(self.root)}: {os.path.relpath(self.path, self.root)} leads outside it") from None


class _LiveAnalysis(ExperimentAnalysis):
    """ExperimentAnalysis whose trial results come from incremental tails, so "best" and
    "best so far" mean exactly what they mean everywhere else in asynctune."""

    def __init__(self, experiment_dir: str, tails: dict[str, JsonlTail]) -> None:
        super().__init__(experiment_dir)
        self._tails = tails
        self._grouped: tuple[Any, dict[str, list[dict[str, Any]]]] | None = None

    def trial_results(self, trial_id: str) -> list[dict[str, Any]]:
        tail = self._tails.get(trial_id)
        if tail is None:
            if not any(t.trial_id == trial_id for t in self.trials) or not is_plain_name(trial_id):
                raise NotFound(f"no trial {trial_id!r} in {self.name}")
            if os.path.exists(results_file(self.experiment_dir)):
                return self._consolidated(trial_id)
            tail = self._tails[trial_id] = JsonlTail(result_file(trial_dir(self.experiment_dir, trial_id)),
                                                     self.experiment_dir)
        elif tail is self._tails.get(RESULTS_FILE):
            return self._consolidated(trial_id)
        return tail.read()

    def _consolidated(self, trial_id: str) -> list[dict[str, Any]]:
        """A consolidated simulation's results (one results.jsonl for every trial): one tail,
        which is each trial's (its version is theirs), grouped by trial once per change."""
        tail = self._tails.get(RESULTS_FILE)
        if tail is None:
            tail = self._tails[RESULTS_FILE] = JsonlTail(results_file(self.experiment_dir),
                                                         self.experiment_dir)
        self._tails[trial_id] = tail
        records = tail.read()
        if self._grouped is None or self._grouped[0] != tail.version:
            self._grouped = (tail.version, group_by_trial(records))
        return self._grouped[1].get(trial_id, [])


class LiveExperiment:
    """One experiment directory, re-read only where its files changed since the last request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._state_key: tuple[int, int, int] | None = None
        self._analysis: _LiveAnalysis | None = None
        self._tails: dict[str, JsonlTail] = {}
        self._decisions = JsonlTail(decisions_file(path), path)
        self._answers: dict[tuple[str | None, ...], tuple[Any, str]] = {}
        self._summary: tuple[Any, dict[str, Any]] | None = None
        self._rows: dict[tuple[str, str], tuple[Any, list[list[Any]]]] = {}

    def analysis(self) -> _LiveAnalysis:
        """The experiment as of its latest experiment.json (rewritten atomically about once a
        second while a run goes on); an unreadable one keeps the last good state."""
        try:
            st = os.stat(experiment_file(self.path))
        except FileNotFoundError:
            raise NotFound(f"{os.path.basename(self.path)} has no {EXPERIMENT_FILE}") from None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._state_key or self._analysis is None:
            try:
                self._analysis = _LiveAnalysis(self.path, self._tails)
                self._state_key = key
            except ValueError:
                if self._analysis is None:
                    raise
        return self._analysis

    def summary(self) -> dict[str, Any]:
        analysis = self.analysis()
        if self._summary is not None and self._summary[0] == self._state_key:
            return self._summary[1]
        row = analysis.summary(scope="all")
        state = analysis.state
        row.update(name=os.path.basename(self.path), scheduler=state.get("scheduler"),
                   searcher=state.get("searcher"), time_used_s=state.get("time_used_s"),
                   num_samples=state.get("num_samples"), objectives=_objectives(analysis),
                   statuses=[status.value for status in Status])  # the trial counts' order, from trial.Status
        row.pop("path", None)  # the page has no use for the server's file system layout
        self._summary = (self._state_key, row)
        return row

    def decisions(self) -> list[dict[str, Any]]:
        return self._decisions.read()

    def trials(self) -> list[dict[str, Any]]:
        """The trial table: status, config, latest and best metric, and the decisions taken."""
        analysis = self.analysis()
        metric = _primary(analysis)
        several = [m for m, _ in analysis.objectives] if len(analysis.objectives) > 1 else []
        front = {t.trial_id for t in analysis.pareto_front()} if several else set()
        by_trial = group_by_trial(self.decisions())
        rows = []
        for trial in analysis.trials:
            last = trial.last_result or {}
            rows.append({
                "trial_id": trial.trial_id, "status": trial.status.value,
                "config": flatten_config(trial.config), "iteration": last.get("training_iteration", 0),
                "num_results": trial.num_results, "time_total_s": last.get("time_total_s"),
                "latest": trial.metric_value(metric) if metric else None,
                "best": trial.metric_best, "error": trial.error, "num_failures": trial.num_failures,
                "start_time": trial.start_time, "end_time": trial.end_time,
                "decisions": [{k: d.get(k) for k in ("decision", "detail", "iteration", "time", "early")}
                              for d in by_trial.get(trial.trial_id, [])],
                # several metrics: each one's latest value, and whether the trial is on the front
                **({"objectives": {m: trial.metric_value(m) for m in several},
                    "pareto": trial.trial_id in front} if several else {}),
            })
        return rows

    def results(self, trial_id: str) -> list[dict[str, Any]]:
        return self.analysis().trial_results(trial_id)

    def trials_json(self) -> str:
        """The summary and the trial table as JSON text, built again only when experiment.json
        or decisions.jsonl changed (the page asks every 2 s)."""
        self.analysis()
        self._decisions.read()
        return self._cached(("trials",), (self._state_key, self._decisions.version),
                            lambda: {"experiment": self.summary(), "trials": self.trials()})

    def curves_json(self, metric: str | None = None) -> str:
        """Every trial's learning curve as [iteration, time_total_s, value] rows, the decisions
        to mark on them, and the best value so far against time, as JSON text."""
        # Every number in it went through as_float (finite or None), so finite() can be skipped.
        return self._cached(("curves", metric), self._versions(), lambda: self._curves(metric), checked=True)

    def best_so_far_json(self, metric: str | None = None) -> str:
        return self._cached(("best_so_far", metric), self._versions(), lambda: {
            "metric": metric or _primary(self.analysis()), "best_so_far": self._best_so_far(metric)}, checked=True)

    def _versions(self) -> tuple[Any, ...]:
        """What every file read here looks like now; reading brings each tail up to date."""
        analysis = self.analysis()
        for trial in analysis.trials:
            analysis.trial_results(trial.trial_id)
        self._decisions.read()
        return self._state_key, self._decisions.version, tuple(tail.version for tail in self._tails.values())

    def _cached(self, what: tuple[str | None, ...], key: Any, build: Callable[[], dict[str, Any]], *,
                checked: bool = False) -> str:
        cached = self._answers.get(what)
        if cached is None or cached[0] != key:
            if len(self._answers) > 16:  # ?metric= can name anything: keep the caches small
                self._answers.clear()
                self._rows.clear()
            answer = build()
            cached = self._answers[what] = (key, json.dumps(answer if checked else finite(answer)))
        return cached[1]

    def _curves(self, metric: str | None) -> dict[str, Any]:
        analysis = self.analysis()
        metric = metric or _primary(analysis)
        curves: dict[str, list[list[float | None]]] = {}
        for trial in analysis.trials:
            if metric is None:
                break
            curves[trial.trial_id] = self._curve(trial.trial_id, metric)
        mode = dict(analysis.objectives).get(metric, analysis.default_mode) if metric else analysis.default_mode
        return {"metric": metric, "mode": mode, "curves": curves,
                "decisions": [{k: d.get(k) for k in ("trial_id", "decision", "detail", "iteration", "early")}
                              for d in self.decisions()],
                "best_so_far": self._best_so_far(metric)}

    def _curve(self, trial_id: str, metric: str) -> list[list[Any]]:
        """One trial's [iteration, time_total_s, value] rows, made again only when it reported."""
        results = self.analysis().trial_results(trial_id)
        version = self._tails[trial_id].version
        cached = self._rows.get((trial_id, metric))
        if cached is None or cached[0] != version:
            rows = []
            for result in results:
                value = as_float(result.get(metric))
                if value is not None:
                    rows.append([result.get("training_iteration"), as_float(result.get("time_total_s")), value])
            cached = self._rows[(trial_id, metric)] = (version, rows)
        return cached[1]

    def _best_so_far(self, metric: str | None) -> list[list[Any]]:
        analysis = self.analysis()
        metric = metric or _primary(analysis)  # several metrics: the curves show the first one
        if not metric or not analysis.default_mode:
            return []
        return [[p["time_s"], p["value"], p["trial_id"]] for p in analysis.best_so_far(metric)]


def _objectives(analysis: ExperimentAnalysis) -> list[dict[str, str]]:
    """The metrics being optimised: one, or several (the page then draws the Pareto front of
    the first two; each trial row holds its `objectives` and whether it is on the front)."""
    return [{"metric": metric, "mode": mode} for metric, mode in analysis.objectives]


def _primary(analysis: ExperimentAnalysis) -> str | None:
    """The metric of the curves and the trial table's latest/best: the first of several."""
    objectives = analysis.objectives
    return objectives[0][0] if objectives else analysis.default_metric


class ExperimentStore:
    """The experiments under a root directory (or the root itself, if it is an experiment)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(os.path.expanduser(root))
        if not os.path.isdir(self.root):
            raise ValueError(f"{root} is not a directory")
        self.single = is_experiment_dir(self.root)
        self._experiments: dict[str, LiveExperiment] = {}

    def names(self) -> list[str]:
        """The experiments' names, oldest first."""
        if self.single:
            return [os.path.basename(self.root)]
        found = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                marker = experiment_file(entry.path)
                if is_plain_name(entry.name) and self._inside(entry.path) and os.path.isfile(marker):
                    found.append((os.path.getmtime(marker), entry.name))
        return [name for _, name in sorted(found)]

    def experiment(self, name: str) -> LiveExperiment:
        if not is_plain_name(name):
            raise NotFound(f"no experiment {name!r}")
        if self.single:
            if name != os.path.basename(self.root):
                raise NotFound(f"no experiment {name!r}")
            path = self.root
        else:
            path = os.path.join(self.root, name)
            if not (self._inside(path) and is_experiment_dir(path)):
                raise NotFound(f"no experiment {name!r}")
        if name not in self._experiments:
            self._experiments[name] = LiveExperiment(path)
        return self._experiments[name]

    def summaries(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.names():
            try:
                rows.append(self.experiment(name).summary())
            except (NotFound, ValueError) as exc:  # removed meanwhile, or never readable: say so
                rows.append({"name": name, "experiment": name, "status": f"unreadable: {exc}", "trials": 0})
        return rows

    def _inside(self, path: str) -> bool:
        return inside(self.root, path) and os.path.realpath(path) != self.root


def finite(value: Any) -> Any:
    """NaN and infinities become None: JSON has no words for them and browsers refuse them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
