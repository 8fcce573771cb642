"""Objectives: what `metric` and `mode` may be (one metric, or several for multi-objective
runs), how they are checked and normalised, and what "better" means for a trial's best value.
Every part that ranks trials (searchers, schedulers, the stopper, the analysis, the console)
reads metric/mode through here, so they agree."""

from __future__ import annotations

import math
from typing import Any

Metric = str | list[str]  # one objective, or several (multi-objective: at least two names)
Mode = str | list[str]


def check_metric_mode(owner: str, metric: Any, mode: Any, *, multi_objective: bool = False) -> None:
    """Raise ValueError for a bad metric/mode pair; lists only where `multi_objective`.

    Several metrics need a mode each (or one mode string for all), and distinct names."""
    if not isinstance(metric, (list, tuple)) and not isinstance(mode, (list, tuple)):
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode=}")
        if metric is not None and not isinstance(metric, str):
            raise ValueError(f"{owner}: metric must be a string, got {metric=}")
        return
    if not multi_objective:
        raise ValueError(f"{owner} optimises one metric: metric and mode must be strings, got {metric=}, {mode=}")
    if not isinstance(metric, (list, tuple)):
        raise ValueError(f"{owner}: a list of modes needs a list of metrics of the same length, got {metric=}, {mode=}")
    if not metric or not all(isinstance(m, str) and m for m in metric):
        raise ValueError(f"{owner}: metric must be a non-empty list of metric names, got {metric=}")
    duplicates = sorted({m for m in metric if list(metric).count(m) > 1})
    if duplicates:
        raise ValueError(f"{owner}: each metric may appear once, got {metric=} (repeated: {', '.join(duplicates)})")
    modes = [mode] * len(metric) if mode is None or isinstance(mode, str) else list(mode)
    if len(modes) != len(metric):
        raise ValueError(f"{owner}: pass one mode per metric (or one mode for all), got {len(metric)} metrics "
                         f"{list(metric)} and {len(modes)} modes {modes}")
    bad = [m for m in modes if m is not None and m not in ("min", "max")]
    if bad:
        raise ValueError(f"{owner}: each mode must be 'min' or 'max', got {mode=}")


def objective_pairs(metric: Any, mode: Any) -> list[tuple[str, str | None]]:
    """(metric, mode) for each objective of a normalised metric/mode (see normalize_objectives)."""
    metrics = metric if isinstance(metric, list) else [metric]
    modes = mode if isinstance(mode, list) else [mode] * len(metrics)
    return list(zip(metrics, modes))


def normalize_objectives(metric: Any, mode: Any) -> tuple[Metric | None, Mode | None]:
    """One metric as a string; several as a list with a list of as many modes (a single mode
    string applies to all). A one-element list is one metric. Call after check_metric_mode."""
    if isinstance(metric, (list, tuple)):
        metric = list(metric)
        modes = mode if isinstance(mode, (list, tuple)) else [mode] * len(metric)
        if len(metric) == 1:
            return metric[0], modes[0]
        return metric, (None if all(m is None for m in modes) else list(modes))
    if isinstance(mode, (list, tuple)) and len(mode) == 1:
        return metric, mode[0]
    return metric, mode


def is_multi_objective(metric: Any) -> bool:
    """Several metrics (a list of at least two names, as normalize_objectives leaves them)."""
    return isinstance(metric, list) and len(metric) > 1


# A searcher or scheduler that ranks by one metric, given several: what to use instead.
MULTI_OBJECTIVE_ALTERNATIVES = {
    "scheduler": "MOASHAScheduler (multi-objective early stopping) or FIFOScheduler (no early stopping)",
    "searcher": "RandomSearch/GridSearch (BasicVariantSearch, the default) or OptunaSearch (model-based, "
                "e.g. NSGA-II or multi-objective TPE: pip install 'asynctune[optuna]')",
}


def _take_objectives(owner: Any, kind: str, metric: Any, mode: Any) -> None:
    """set_search_properties' rule: the owner's own metric/mode win; several metrics reach only a
    multi_objective owner, any other one is told what to use instead (before any trial starts)."""
    if owner.metric is None and is_multi_objective(metric) and not owner.multi_objective:
        name = type(owner).__name__
        raise ValueError(
            f"{name} ranks trials by one metric, but run() was given several: metric={metric}. "
            f"Use {MULTI_OBJECTIVE_ALTERNATIVES[kind]}, or give {name} its own metric= and mode= "
            f"to rank by one of them")
    if isinstance(owner.metric, str) and isinstance(mode, list) and owner.mode is None:
        # its own metric, run()'s modes: take the mode run() gave that metric, if it is one of them
        mode = mode[metric.index(owner.metric)] if isinstance(metric, list) and owner.metric in metric else None
    owner.metric = owner.metric or metric
    owner.mode = owner.mode or mode


def as_float(value: Any) -> float | None:
    """A metric value as a float; NaN/inf and non-numbers count as missing."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int like 10**400
        return None
    return number if math.isfinite(number) else None


def improves(value: float, best: float | None, mode: str | None) -> bool:
    """Whether `value` beats `best` under `mode` ("min": lower is better; anything else: higher)."""
    return best is None or (value < best if mode == "min" else value > best)


def update_best(best: float | None, metric: Any, mode: Any, result: dict[str, Any]) -> float | None:
    """The best value of `metric` after `result` (several metrics have no one best)."""
    if not isinstance(metric, str) or metric not in result:
        return best
    value = as_float(result[metric])
    if value is None:
        return best
    return value if improves(value, best, mode) else best
