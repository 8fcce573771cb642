"""ExperimentAnalysis: the results of an experiment, from run() or from its directory later."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from ..core.objectives import as_float, check_metric_mode, is_multi_objective, normalize_objectives
from ..core.pareto import front_of
from ..reporting.decisions import read_decisions, refine_terminated
from ..worker.session import load_checkpoint
from ..store.layout import (
    EXPERIMENT_FILE, RUN_SPEC_FILE, flatten_config, group_by_trial, read_jsonl, read_results, read_typed_params,
)
from ..store.lock import is_driven
from ..store.recovery import caught_up
from ..store.names import checkpoint_iteration, experiment_file, result_file, results_file, trial_dir
from ..store.paths import check_name, checked
from ..core.trial import Status, Trial
from ..store.format import ExperimentFileError, read_experiment_file

logger = logging.getLogger(__name__)

_SCOPES = ("last", "all", "avg", "last-5-avg", "last-10-avg")
DEFAULT_SCOPE = "all"  # what "best" means by default: a trial's best-ever result (see get_best_trial)


class ExperimentAnalysis:
    """Trials, their results and the best of them.

    Example:
        >>> analysis = asynctune.run(train, config=space, metric="loss", mode="min")
        >>> analysis.best_config, analysis.best_result["loss"], analysis.best_checkpoint
        >>> later = ExperimentAnalysis("~/asynctune_results/train_2026-11-26_07-00-00")
        >>> later.dataframe().sort_values("loss").head()

    Args:
        experiment_dir: The experiment's directory (holds experiment.json).
        metric: Default metric for the best_* properties (default: the one run() used); a list
            of metrics for `pareto_front()`.
        mode: "min" or "max" (default: the one run() used); one per metric for a list.
        trials, state: The trial table and experiment.json's other contents when the caller
            holds them (run() does: nothing is read back from disk).
        typed_configs: Read each trial's config with the types JSON loses (a tuple, a class, a
            numpy value) from its params.pkl, signed with your key; False keeps experiment.json's
            view (their reprs), without unpickling anything (the CLI's choice).

    With several metrics (run(metric=["error", "latency"], ...)) there is no single best: the
    best_* properties raise and point to `pareto_front()`; get_best_trial(metric="error")
    still ranks by one of them.
    """

    def __init__(self, experiment_dir: str, *, metric: str | list[str] | None = None,
                 mode: str | list[str] | None = None, trials: Sequence[Trial] | None = None,
                 state: dict[str, Any] | None = None, typed_configs: bool = True) -> None:
        check_metric_mode("ExperimentAnalysis", metric, mode, multi_objective=True)
        metric, mode = normalize_objectives(metric, mode)
        self.experiment_dir = os.path.abspath(os.path.expanduser(experiment_dir))
        from_disk = state is None
        state = self._read_state() if state is None else state  # run() has it: experiment.json as just saved
        self.name: str = state.get("name", os.path.basename(self.experiment_dir))
        self.status: str = state.get("status", "UNKNOWN")
        if from_disk and self.status == "RUNNING" and is_driven(self.experiment_dir) is False:
            self.status = "INTERRUPTED"  # its driver was killed (SIGKILL, a lost machine): resume continues it
            # Its experiment.json was saved up to a second before: the journal and results have the rest.
            state = {**state, "trials": caught_up(self.experiment_dir, state.get("trials") or [],
                                                  state.get("metric"), state.get("mode"))}
        self.default_metric = metric or state.get("metric")
        self.default_mode = mode or state.get("mode")
        self.start_time: float | None = state.get("start_time")
        self.state = state
        self._run_metric_mode = (state.get("metric"), state.get("mode"))  # what trial.metric_best holds
        source = experiment_file(self.experiment_dir)
        self.trials: list[Trial] = list(trials) if trials is not None else [
            _trial_from(s, source) for s in state.get("trials", [])]
        if trials is None and any(s.get("status") == "TERMINATED" for s in state.get("trials", [])
                                  if isinstance(s, dict)):
            refine_terminated(self.trials, state["trials"], self.decisions())  # written by an older asynctune
        if trials is None and typed_configs:  # tuples, classes, arrays: as the trials got them, not as JSON shows them
            for trial in self.trials:
                if trial.path and (typed := read_typed_params(trial.path)) is not None:
                    trial.config = typed
        self._results: dict[str, list[dict[str, Any]]] = {}

    def _read_state(self) -> dict[str, Any]:
        try:
            return read_experiment_file(self.experiment_dir)  # checked; paths where the experiment is now
        except FileNotFoundError:
            raise ValueError(f"{self.experiment_dir} is not an asynctune experiment directory (no {EXPERIMENT_FILE})") from None

    # Best ----------------------------------------------------------------------------------------
    # One meaning of "best" everywhere (this class, the live console, the plots, `asynctune show`
    # and `ls`): DEFAULT_SCOPE, a trial's best-ever result. Early stopping keeps the trials whose
    # results are good, and a stopped or overfitting trial's last result is not the model worth
    # keeping; the checkpoint returned is the one saved with that result. Pass scope="last" for
    # Ray Tune's default (the value at the end, the state the trial finished in). A trial that
    # failed (ERROR) is never the best unless include_failed=True: it may have reported a good
    # value before diverging, but its model is not one to use.

    def get_best_trial(self, metric: str | None = None, mode: str | None = None, scope: str = DEFAULT_SCOPE,
                       *, filter_nan_and_inf: bool = True, include_failed: bool = False) -> Trial | None:
        """The best trial by `metric`: its best value ever (scope="all", the default), last value
        ("last"), mean ("avg"), or mean of its last 5 or 10 ("last-5-avg", "last-10-avg").
        Trials without a finite value of the metric are skipped, and failed trials unless
        `include_failed`; None if no trial is left."""
        metric, mode = self._metric_mode(metric, mode)
        _check_scope(scope)
        best: tuple[float, Trial] | None = None
        for trial in self.trials:
            if trial.status is Status.ERROR and not include_failed:
                continue
            value = self._score(trial, metric, mode, scope)
            if value is None or (filter_nan_and_inf and not math.isfinite(value)):
                continue
            if best is None or (value < best[0] if mode == "min" else value > best[0]):
                best = (value, trial)
        return best[1] if best else None

    def get_best_result(self, metric: str | None = None, mode: str | None = None,
                        scope: str = DEFAULT_SCOPE, *, include_failed: bool = False) -> dict[str, Any] | None:
        """The best trial's result that counts: the one with its best value (scope="all"),
        else its last result."""
        metric, mode = self._metric_mode(metric, mode)
        trial = self.get_best_trial(metric, mode, scope, include_failed=include_failed)
        return self._result_for(trial, metric, mode, scope) if trial else None

    def get_best_checkpoint(self, metric: str | None = None, mode: str | None = None,
                            scope: str = DEFAULT_SCOPE, *, include_failed: bool = False) -> str | None:
        """The best trial's checkpoint directory that matches `get_best_result`: with scope="all"
        the one saved with the best result, or if that one was not saved (or was deleted by
        keep_checkpoints_num) the best of its results that has a checkpoint on disk; with the
        other scopes its latest checkpoint. None if it saved none."""
        metric, mode = self._metric_mode(metric, mode)
        trial = self.get_best_trial(metric, mode, scope, include_failed=include_failed)
        if trial is None:
            return None
        if scope != "all":
            return trial.checkpoint
        saved = _checkpoints_by_iteration(trial.path or os.path.join(self.experiment_dir, trial.trial_id))
        with_checkpoint = [r for r in self._finite_results(trial, metric)
                           if r.get("training_iteration") in saved]
        if not with_checkpoint:
            return trial.checkpoint
        best = (min if mode == "min" else max)(with_checkpoint, key=lambda r: as_float(r.get(metric)))
        return saved[best["training_iteration"]]

    def _score(self, trial: Trial, metric: str, mode: str, scope: str) -> float | None:
        if scope == "last":
            return trial.metric_value(metric)
        if scope == "all" and trial.metric_best is not None and (metric, mode) == self._run_metric_mode:
            return trial.metric_best  # kept by the controller: no need to read every result
        values = [as_float(r.get(metric)) for r in self._finite_results(trial, metric)]
        if not values:
            return None
        if scope == "all":
            return min(values) if mode == "min" else max(values)  # type: ignore[type-var]
        if scope == "avg":
            return sum(values) / len(values)  # type: ignore[arg-type]
        tail = values[-(5 if scope == "last-5-avg" else 10):]
        return sum(tail) / len(tail)  # type: ignore[arg-type]

    def _finite_results(self, trial: Trial, metric: str) -> list[dict[str, Any]]:
        return [r for r in self.trial_results(trial.trial_id) if as_float(r.get(metric)) is not None]

    def _result_for(self, trial: Trial, metric: str, mode: str, scope: str) -> dict[str, Any] | None:
        if scope != "all":
            return trial.last_result
        results = self._finite_results(trial, metric)
        if not results:
            return trial.last_result
        return (min if mode == "min" else max)(results, key=lambda r: as_float(r.get(metric)))

    def _metric_mode(self, metric: str | None, mode: str | None) -> tuple[str, str]:
        if metric is None and is_multi_objective(self.default_metric):
            raise ValueError(
                f"{self.name} has several metrics {self.default_metric}: there is no single best trial. "
                f"Use pareto_front() for the non-dominated trials, or name one metric (metric=..., mode=...)")
        if isinstance(metric, str) and mode is None and is_multi_objective(self.default_metric):
            if metric in self.default_metric and isinstance(self.default_mode, list):
                mode = self.default_mode[self.default_metric.index(metric)]  # the mode run() gave it
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if metric is None or mode is None:
            raise ValueError("no metric/mode: pass metric= and mode= to run() or to this call")
        check_metric_mode("ExperimentAnalysis", metric, mode)
        return metric, mode

    # Several objectives ----------------------------------------------------------------------------
    # A trial's point is its LAST result (its objectives where it ended), as Optuna and Syne Tune
    # take it: the best-ever value of each objective may come from different results, and such a
    # mix is no model the trial ever was. Failed trials are left out, as from best_*.

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """The experiment's (metric, mode) pairs: one, or several for a multi-objective run."""
        metric, mode = self.default_metric, self.default_mode
        if metric is None or mode is None:
            return []
        return list(zip(metric, mode)) if isinstance(metric, list) else [(metric, mode)]

    def pareto_front(self, metric: list[str] | None = None, mode: list[str] | str | None = None,
                     *, include_failed: bool = False) -> list[Trial]:
        """The non-dominated trials, by each trial's last result, in trial order.

        A trial is on the front if no other trial is at least as good in every metric and better
        in one. Trials whose last result lacks a metric (or holds NaN/inf) are left out, and
        failed trials unless `include_failed`.

        Example:
            >>> analysis = asynctune.run(train, config=space, metric=["error", "latency"], mode="min")
            >>> [(t.trial_id, t.last_result["error"], t.last_result["latency"]) for t in analysis.pareto_front()]

        Args:
            metric, mode: The objectives (default: the ones run() was given; one metric gives
                the trials tied for the best last value).
        """
        metrics, modes = self._objectives(metric, mode)
        return front_of(self.trials, metrics, modes, include_failed=include_failed)

    def _objectives(self, metric: Any, mode: Any) -> tuple[list[str], list[str]]:
        check_metric_mode("ExperimentAnalysis", metric, mode, multi_objective=True)
        metric, mode = normalize_objectives(metric, mode)
        if metric is None:
            pairs = self.objectives
            if not pairs:
                raise ValueError("no metric/mode: pass metric= and mode= to run() or to this call")
            return [m for m, _ in pairs], [d for _, d in pairs]
        metrics = metric if isinstance(metric, list) else [metric]
        modes = mode if isinstance(mode, list) else [mode] * len(metrics)
        if any(m is None for m in modes):
            raise ValueError(f"pass mode= ('min' or 'max', or one per metric) with metric={metric!r}")
        return metrics, modes

    @property
    def best_trial(self) -> Trial | None:
        """The trial with the best value ever reported, failed trials left out (see get_best_trial
        to rank otherwise)."""
        return self.get_best_trial()

    @property
    def best_config(self) -> dict[str, Any] | None:
        trial = self.best_trial
        return trial.config if trial else None

    @property
    def best_result(self) -> dict[str, Any] | None:
        """The best trial's result with its best value (not its last one)."""
        return self.get_best_result()

    @property
    def best_checkpoint(self) -> str | None:
        """The directory of the checkpoint saved with `best_result` (see get_best_checkpoint)."""
        return self.get_best_checkpoint()

    def load_best_checkpoint(self, *, trust: bool = False) -> Any:
        """The best checkpoint as the trial saved it: the dict, or the directory path.

        A dict checkpoint is unpickled only if it is signed with your key (docs/security.md);
        `trust=True` loads one from a directory made elsewhere, after you reviewed it."""
        return load_checkpoint(self.best_checkpoint, trust=trust)

    @property
    def best_logdir(self) -> str | None:
        trial = self.best_trial
        return trial.path if trial else None

    # Tables --------------------------------------------------------------------------------------

    @property
    def results(self) -> dict[str, dict[str, Any] | None]:
        """Each trial's last result."""
        return {t.trial_id: t.last_result for t in self.trials}

    def trial_results(self, trial_id: str) -> list[dict[str, Any]]:
        """Every result a trial reported, in order (read from its result.jsonl, or from the
        experiment's results.jsonl when a simulation recorded them all there)."""
        if trial_id not in self._results:
            trial = next((t for t in self.trials if t.trial_id == trial_id), None)
            if trial is None:
                raise KeyError(f"no trial {trial_id!r} in {self.experiment_dir}")
            consolidated = results_file(self.experiment_dir)
            if os.path.exists(consolidated):  # recording="consolidated": read once, for every trial
                self._results.update({t.trial_id: [] for t in self.trials})
                self._results.update(group_by_trial(read_jsonl(checked(self.experiment_dir, consolidated))))
            else:  # its directory in this experiment, wherever experiment.json says it was; no link out
                directory = trial_dir(self.experiment_dir, trial_id)
                checked(self.experiment_dir, result_file(directory))
                self._results[trial_id] = read_results(directory)
        return self._results[trial_id]

    def dataframe(self) -> Any:
        """One row per trial: its last result (every metric), its config as config/... columns, its
        status; with several metrics also `pareto_front` (True for the trials on the front)."""
        pd = _pandas()
        front = {t.trial_id for t in self.pareto_front()} if is_multi_objective(self.default_metric) else None
        rows = []
        for trial in self.trials:
            row: dict[str, Any] = dict(trial.last_result or {})
            row.update({f"config/{k}": v for k, v in flatten_config(trial.config).items()})
            row.update(trial_id=trial.trial_id, status=trial.status.value, logdir=trial.path)
            if front is not None:
                row["pareto_front"] = trial.trial_id in front
            rows.append(row)
        return pd.DataFrame(rows)

    def trial_dataframes(self) -> dict[str, Any]:
        """Every result of every trial, one DataFrame per trial."""
        pd = _pandas()
        return {t.trial_id: pd.DataFrame(self.trial_results(t.trial_id)) for t in self.trials}

    def decisions(self) -> list[dict[str, Any]]:
        """Every scheduler decision (STOP, PAUSE, MUTATE, RESUME) from decisions.jsonl, in order."""
        return read_decisions(self.experiment_dir)

    def best_so_far(self, metric: str | None = None, mode: str | None = None) -> list[dict[str, Any]]:
        """The best value of `metric` over all trials as results arrived, for plotting against time.

        Returns one entry per improvement: {"time_s": seconds since the first trial started,
        "value": the new best, "trial_id": who reported it, "training_iteration": when}.
        """
        metric, mode = self._metric_mode(metric, mode)
        points = []
        for trial in self.trials:
            for result in self.trial_results(trial.trial_id):
                value = as_float(result.get(metric))
                if value is not None and isinstance(result.get("timestamp"), (int, float)):
                    points.append((result["timestamp"], value, trial.trial_id, result.get("training_iteration")))
        if not points:
            return []
        points.sort(key=lambda p: p[0])
        starts = [t.start_time for t in self.trials if t.start_time]
        origin = min(starts + [points[0][0]])
        better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
        out: list[dict[str, Any]] = []
        for timestamp, value, trial_id, iteration in points:
            if not out or better(value, out[-1]["value"]):
                out.append({"time_s": timestamp - origin, "value": value, "trial_id": trial_id,
                            "training_iteration": iteration})
        return out

    def summary(self, metric: str | None = None, mode: str | None = None,
                scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
        """One line about the experiment: name, status, trials by status, the best trial and value."""
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        row: dict[str, Any] = {"experiment": self.name, "status": self.status, "trials": len(self.trials),
                               **{s.value: counts.get(s.value, 0) for s in Status},
                               "metric": None, "mode": None, "scope": scope, "best": None, "best_trial_id": None,
                               "start_time": self.start_time, "path": self.experiment_dir}
        if metric is None and is_multi_objective(self.default_metric):
            row.update(metric=self.default_metric, mode=self.default_mode, pareto_front=len(self.pareto_front()))
            return row  # several metrics: no single best, the size of the front instead
        try:
            metric, mode = self._metric_mode(metric, mode)
        except ValueError:
            return row  # an experiment run without metric= has no best
        best = self.get_best_trial(metric, mode, scope)
        row.update(metric=metric, mode=mode)
        if best is not None:
            row.update(best=self._score(best, metric, mode, scope), best_trial_id=best.trial_id)
        return row

    @staticmethod
    def compare(experiment_dirs: Sequence[str], metric: str | None = None, mode: str | None = None,
                scope: str = DEFAULT_SCOPE) -> Any:
        """Several experiments side by side: one row each, with its best trial and config.

        Example:
            >>> ExperimentAnalysis.compare(["~/asynctune_results/asha", "~/asynctune_results/random"],
            ...                            metric="loss", mode="min")

        Args:
            experiment_dirs: The experiments' directories.
            metric, mode: What "best" means (default: what each experiment was run with).
            scope: As in `get_best_trial`.
        """
        pd = _pandas()
        rows = []
        for directory in experiment_dirs:
            analysis = ExperimentAnalysis(directory)
            row = analysis.summary(metric, mode, scope)
            single = row["metric"] and not is_multi_objective(row["metric"])
            best = analysis.get_best_trial(row["metric"], row["mode"], scope) if single else None
            if best is not None:
                row.update({f"config/{k}": v for k, v in flatten_config(best.config).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"ExperimentAnalysis({self.experiment_dir!r}, {len(self.trials)} trials, status={self.status})"


def _trial_from(summary: dict[str, Any], source: str) -> Trial:
    trial_id = check_name(summary["trial_id"], what="trial_id", source=source)  # plots and reads use it as a path
    trial = Trial(trial_id=trial_id, config=summary.get("config", {}), index=summary.get("index", 0))
    trial.status = Status(summary.get("status", Status.FINISHED.value))
    for key in ("path", "last_result", "num_results", "checkpoint", "error", "num_failures", "resources",
                "start_time", "end_time", "metric_best", "lineage", "checkpoint_iteration",
                "checkpoint_time_total"):
        if key in summary and summary[key] is not None:
            setattr(trial, key, summary[key])
    return trial


def _check_scope(scope: str) -> None:
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {_SCOPES}, got {scope=}")


def _checkpoints_by_iteration(trial_dir: str) -> dict[int, str]:
    """The trial's own checkpoints still on disk (checkpoint_<iteration>/), by iteration."""
    try:
        entries = list(os.scandir(trial_dir))
    except OSError:
        return {}
    found = {}
    for entry in entries:
        iteration = checkpoint_iteration(entry.name)
        if iteration is not None and entry.is_dir():
            found[iteration] = entry.path
    return found


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("dataframes need pandas: pip install 'asynctune[pandas]'") from None
    return pandas


def find_experiments(root: str, *, failed_at_start: bool = False) -> list[str]:
    """The experiment directories directly under `root` (those holding experiment.json), oldest first.

    With `failed_at_start`, also those of runs that failed before saving any state (a
    run_spec.pkl and no experiment.json: `ExperimentAnalysis` cannot read them)."""
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise ValueError(f"{root} is not a directory")
    found = []
    for entry in os.scandir(root):
        if not entry.is_dir():
            continue
        for marker in (EXPERIMENT_FILE, *((RUN_SPEC_FILE,) if failed_at_start else ())):
            path = os.path.join(entry.path, marker)
            if os.path.isfile(path):
                found.append((os.path.getmtime(path), entry.path))
                break
    return [path for _, path in sorted(found)]


def load_experiments(root_or_dirs: str | Sequence[str]) -> Any:
    """Every trial of several experiments in one DataFrame, with an `experiment` column.

    Example:
        >>> frame = load_experiments("~/asynctune_results")
        >>> frame.groupby("experiment")["loss"].min()

    Args:
        root_or_dirs: A directory holding experiments (each with its experiment.json), or a
            list of experiment directories.
    """
    pd = _pandas()
    dirs = find_experiments(root_or_dirs) if isinstance(root_or_dirs, str) else list(root_or_dirs)
    frames = []
    for directory in dirs:
        try:
            analysis = ExperimentAnalysis(directory)
        except ExperimentFileError as exc:  # one damaged experiment is marked; the others are listed
            logger.warning("%s", exc)
            frames.append(pd.DataFrame([{"experiment": os.path.basename(directory), "status": "DAMAGED",
                                         "error": str(exc)}]))
            continue
        frame = analysis.dataframe()
        frame.insert(0, "experiment", analysis.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["experiment", "trial_id"])
