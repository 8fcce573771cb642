"""Plots of a finished (or running) experiment, as PNG files: `asynctune plot DIR`.

- `learning_curves.png`: every trial's metric against its training iteration, the best trial
  drawn thicker, with a mark where the scheduler stopped, paused, resumed (promoted) or cloned
  it (from decisions.jsonl) and where it failed;
- `best_so_far.png`: the best value over all trials against wall-clock time;
- `trials/<trial_id>.png`: one trial's curve with its marks (`per_trial=True`);
- `pareto_front.png`, for an experiment run with several metrics: every trial's last result
  as a point of the first two objectives, the non-dominated ones highlighted and connected
  (name one metric with metric= for the views above).

Needs matplotlib (`pip install 'asynctune[plot]'`); it draws on figures without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .experiment import ExperimentAnalysis
from ..core.objectives import as_float
from ..core.trial import Status
from ..store.paths import check_name

# How each decision is marked: (matplotlib marker, colour, legend label).
MARKS = {
    "STOP": ("X", "tab:red", "stopped early"),
    "PAUSE": ("s", "tab:orange", "paused"),
    "RESUME": ("^", "tab:green", "resumed / promoted"),
    "PROMOTE": ("^", "tab:green", "resumed / promoted"),
    "MUTATE": ("D", "tab:purple", "cloned (new config)"),
    "ERROR": ("x", "black", "failed"),
}
X_AXES = ("training_iteration", "time_total_s")


def plot_experiment(experiment_dir: str, *, metric: str | None = None, mode: str | None = None,
                    out_dir: str | None = None, x: str = "training_iteration", per_trial: bool = False,
                    log_y: bool | None = None, dpi: int = 100) -> list[str]:
    """Write the experiment's plots as PNG files and return their paths.

    Example:
        >>> plot_experiment("~/asynctune_results/tune_digits", per_trial=True)
        ['.../plots/learning_curves.png', '.../plots/best_so_far.png', '.../plots/trials/trial_00000.png', ...]

    Args:
        experiment_dir: The experiment's directory.
        metric, mode: The metric to draw (default: the one the experiment was run with; for an
            experiment with several, the Pareto front alone, see `plot_pareto_front`).
        out_dir: Where the PNGs go (default `<experiment_dir>/plots`).
        x: The x axis of learning curves: "training_iteration" or "time_total_s".
        per_trial: Also write one PNG per trial under `trials/`.
        log_y: A logarithmic y axis (default: when all values are positive and span more than
            two orders of magnitude).
        dpi: Resolution of the PNGs.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x=}")
    if not isinstance(dpi, int) or dpi < 10:
        raise ValueError(f"dpi must be an integer >= 10, got {dpi=}")
    figure_class = _figure_class()
    analysis = ExperimentAnalysis(experiment_dir, typed_configs=False)
    if metric is None and len(analysis.objectives) > 1:
        return [plot_pareto_front(analysis, out_dir=out_dir, dpi=dpi)]
    metric, mode = _metric_mode(analysis, metric, mode)
    out_dir = os.path.abspath(os.path.expanduser(out_dir or os.path.join(analysis.experiment_dir, "plots")))
    os.makedirs(out_dir, exist_ok=True)

    curves = {t.trial_id: _curve(analysis.trial_results(t.trial_id), metric, x) for t in analysis.trials}
    marks = _marks(analysis, curves, x)
    values = [v for _, ys in curves.values() for v in ys]
    if not values:
        raise ValueError(f"no trial of {analysis.experiment_dir} reported {metric!r}")
    if log_y is None:
        log_y = min(values) > 0 and max(values) / min(values) > 100
    best = analysis.get_best_trial(metric, mode)  # the default scope: as best_result and the console
    best_id = best.trial_id if best else None

    paths = []
    figure = figure_class(figsize=(9, 5.5), layout="constrained")
    axes = figure.subplots()
    for index, (trial_id, (xs, ys)) in enumerate(curves.items()):
        if not xs:
            continue
        is_best = trial_id == best_id
        axes.plot(xs, ys, color="black" if is_best else f"C{index % 10}", linewidth=2.4 if is_best else 1.0,
                  alpha=1.0 if is_best else 0.65, zorder=3 if is_best else 2,
                  label=f"best (best-ever {metric}): {trial_id}" if is_best else None)
    _draw_marks(axes, [m for ms in marks.values() for m in ms])
    _style(axes, x, metric, log_y, f"{analysis.name}: {metric} of {len(analysis.trials)} trials ({mode})")
    paths.append(_save(figure, os.path.join(out_dir, "learning_curves.png"), dpi))

    points = analysis.best_so_far(metric, mode)
    figure = figure_class(figsize=(9, 4.5), layout="constrained")
    axes = figure.subplots()
    times = [p["time_s"] for p in points]
    bests = [p["value"] for p in points]
    finish = max([times[-1]] + [_end_s(analysis, points)])
    axes.step(times + [finish], bests + [bests[-1]], where="post", color="tab:blue", linewidth=2)
    axes.plot(times, bests, "o", color="tab:blue", markersize=4)
    leaders = [p for i, p in enumerate(points) if i == 0 or p["trial_id"] != points[i - 1]["trial_id"]]
    if len(leaders) <= 15:  # name the trial that took the lead, where it did
        for point in leaders:
            axes.annotate(point["trial_id"], (point["time_s"], point["value"]), textcoords="offset points",
                          xytext=(5, -10), fontsize=7, color="dimgray")
    _style(axes, "wall-clock time (s)", f"best {metric} so far", log_y,
           f"{analysis.name}: best {metric} against wall-clock time ({mode})")
    paths.append(_save(figure, os.path.join(out_dir, "best_so_far.png"), dpi))

    if per_trial:
        trial_dir = os.path.join(out_dir, "trials")
        os.makedirs(trial_dir, exist_ok=True)
        for trial in analysis.trials:
            xs, ys = curves[trial.trial_id]
            figure = figure_class(figsize=(6, 3.5), layout="constrained")
            axes = figure.subplots()
            axes.plot(xs, ys, color="tab:blue", linewidth=1.5, marker="." if len(xs) < 50 else None)
            _draw_marks(axes, marks.get(trial.trial_id, []))
            _style(axes, x, metric, log_y, f"{trial.trial_id} ({trial.status.value}): {_config_text(trial.config)}")
            name = check_name(trial.trial_id, what="trial_id", source=analysis.experiment_dir)  # never "../x"
            paths.append(_save(figure, os.path.join(trial_dir, f"{name}.png"), dpi))
    return paths


def plot_pareto_front(analysis: ExperimentAnalysis, *, out_dir: str | None = None, dpi: int = 100) -> str:
    """Write `pareto_front.png`: all trials by their last results, the front highlighted.

    The front is `analysis.pareto_front()` (non-dominated over every objective). Only the first
    two objectives are drawn; with more, the title says so and front points are not connected
    (a front in three or more dimensions is no line in two). Failed trials are left out.
    """
    figure_class = _figure_class()
    objectives = analysis.objectives
    (x_metric, x_mode), (y_metric, y_mode) = objectives[0], objectives[1]
    front = analysis.pareto_front()
    on_front = {t.trial_id for t in front}
    points = [(t, as_float((t.last_result or {}).get(x_metric)), as_float((t.last_result or {}).get(y_metric)))
              for t in analysis.trials if t.status is not Status.ERROR]
    points = [(t, px, py) for t, px, py in points if px is not None and py is not None]
    if not points:
        raise ValueError(f"no trial of {analysis.experiment_dir} reported both {x_metric!r} and {y_metric!r}")
    out_dir = os.path.abspath(os.path.expanduser(out_dir or os.path.join(analysis.experiment_dir, "plots")))
    os.makedirs(out_dir, exist_ok=True)

    figure = figure_class(figsize=(7, 5.5), layout="constrained")
    axes = figure.subplots()
    others = [(px, py) for t, px, py in points if t.trial_id not in on_front]
    best = sorted((px, py) for t, px, py in points if t.trial_id in on_front)
    axes.scatter([p[0] for p in others], [p[1] for p in others], s=14, color="tab:gray", alpha=0.55,
                 label=f"dominated ({len(others)})", zorder=2)
    if len(objectives) == 2 and best:
        # the attainment line, the edge of what the front dominates: between two neighbours it
        # runs at the level of the one better in x (the left one when x is minimised)
        steps = "post" if x_mode == "min" else "pre"
        axes.step([p[0] for p in best], [p[1] for p in best], where=steps, color="tab:red", linewidth=1.2, zorder=3)
    axes.scatter([p[0] for p in best], [p[1] for p in best], s=36, color="tab:red", edgecolors="black",
                 linewidths=0.5, label=f"Pareto front ({len(best)})", zorder=4)
    more = f"; first 2 of {len(objectives)} objectives, front over all" if len(objectives) > 2 else ""
    axes.set_title(f"{analysis.name}: {len(points)} trials by last result{more}", fontsize=10)
    axes.set_xlabel(f"{x_metric} ({x_mode})")
    axes.set_ylabel(f"{y_metric} ({y_mode})")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return _save(figure, os.path.join(out_dir, "pareto_front.png"), dpi)


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'asynctune[plot]'") from None
    return Figure


def _metric_mode(analysis: ExperimentAnalysis, metric: str | None, mode: str | None) -> tuple[str, str]:
    metric = metric or analysis.default_metric
    if metric is None:
        raise ValueError(f"{analysis.experiment_dir} was run without metric=; name the metric to plot")
    return metric, mode or dict(analysis.objectives).get(metric) or "min"


def _curve(results: Sequence[dict[str, Any]], metric: str, x: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for result in results:
        value, position = as_float(result.get(metric)), as_float(result.get(x))
        if value is not None and position is not None:
            xs.append(position)
            ys.append(value)
    return xs, ys


def _marks(analysis: ExperimentAnalysis, curves: dict[str, tuple[list[float], list[float]]],
           x: str) -> dict[str, list[tuple[str, float, float]]]:
    """Per trial, (decision, x, y) for each decision, placed on the curve at the decision's iteration."""
    marks: dict[str, list[tuple[str, float, float]]] = {}
    # Schedulers also say STOP to trials that reached the end (ASHA at max_t): that is no news.
    # decisions.jsonl says so ("early": false); older logs without it: a STOP at the longest run.
    longest = max((t.iteration for t in analysis.trials), default=0)
    for decision in analysis.decisions():
        trial_id, kind = decision.get("trial_id"), decision.get("decision")
        if kind == "STOP" and decision.get("early", decision.get("iteration", 0) < longest) is False:
            continue
        xs, ys = curves.get(trial_id, ([], []))
        where = as_float(decision.get("iteration" if x == "training_iteration" else "time_total_s"))
        if kind not in MARKS or not xs or where is None:
            continue
        # The last point at or before the decision (a decision follows the result it was taken on).
        index = max((i for i, position in enumerate(xs) if position <= where + 1e-9), default=0)
        marks.setdefault(trial_id, []).append((kind, xs[index], ys[index]))
    for trial in analysis.trials:
        xs, ys = curves.get(trial.trial_id, ([], []))
        if trial.status is Status.ERROR and xs:
            marks.setdefault(trial.trial_id, []).append(("ERROR", xs[-1], ys[-1]))
    return marks


def _draw_marks(axes: Any, marks: Sequence[tuple[str, float, float]]) -> None:
    for kind in dict.fromkeys(k for k, _, _ in marks):
        marker, colour, label = MARKS[kind]
        points = [(px, py) for k, px, py in marks if k == kind]
        axes.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour, s=42,
                     zorder=4, label=f"{label} ({len(points)})", edgecolors="white" if marker != "x" else None,
                     linewidths=0.6)


def _style(axes: Any, x: str, metric: str, log_y: bool, title: str) -> None:
    axes.set_xlabel(x.replace("_", " ") if x in X_AXES else x)
    axes.set_ylabel(metric)
    axes.set_title(title, fontsize=10)
    if log_y:
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")


def _save(figure: Any, path: str, dpi: int) -> str:
    figure.savefig(path, dpi=dpi)
    return path


def _end_s(analysis: ExperimentAnalysis, points: Sequence[dict[str, Any]]) -> float:
    """Seconds from the first point's origin to the last result, so the step line runs to the end."""
    ends = [t.end_time for t in analysis.trials if t.end_time]
    starts = [t.start_time for t in analysis.trials if t.start_time]
    if not ends or not starts:
        return points[-1]["time_s"]
    return max(ends) - min(starts)


def _config_text(config: dict[str, Any], width: int = 70) -> str:
    text = ", ".join(f"{k}={_short(v)}" for k, v in config.items())
    return text if len(text) <= width else text[: width - 3] + "..."


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
