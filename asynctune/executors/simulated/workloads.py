"""The table a simulation replays: recorded learning curves, and the lookup of the recorded
config nearest to any config a searcher proposes.

A `Workload` holds, for each recorded config, the value of each metric after each epoch and
the time each epoch took, and reads and writes the JSON files under benchmarks/workloads/
(recorded by benchmarks/record_workload.py). Configs off the table are answered by the
nearest recorded one: exact match on categorical hyperparameters, then the smallest Euclidean
distance over the numeric ones, each scaled to [0, 1] over its range (on a log scale for log
domains).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...core.space import Categorical, Domain, Float, Integer

_CATEGORY_MISMATCH = 1e6  # a categorical mismatch outweighs any numeric distance (at most n_numeric)
_CACHE_SIZE = 1024  # lookups of configs off the table kept (PBT asks for the same ones again)


class Workload:
    """A table of learning curves: configs, per-epoch metrics and per-epoch times.

    Example:
        >>> workload = Workload.load("benchmarks/workloads/mlp_digits.json.gz")
        >>> run(replay, config=workload.space(), metric=workload.metric, mode=workload.mode,
        ...     executor=SimulatedExecutor(workload, n_workers=4), time_budget_s=3600)

    Args:
        name: A short name (used in tables and plots).
        configs: The recorded configs, one per curve (flat dicts of numbers and strings).
        curves: {metric: array (n_configs, n_epochs)}: each metric after each epoch.
        epoch_time_s: Array (n_configs, n_epochs): how long each epoch took, in seconds.
        metric, mode: The metric a benchmark optimises by default and "min" or "max".
        space: {hyperparameter: spec}, the search space the configs were drawn from, each spec
            {"type": "float" | "int", "low", "high", "log": bool} (bounds inclusive) or
            {"type": "choice", "values": [...]}. Inferred from the configs when None.
        description: How the table was recorded (model, data, machine).
    """

    def __init__(self, name: str, configs: Sequence[Mapping[str, Any]], curves: Mapping[str, Any],
                 epoch_time_s: Any, *, metric: str, mode: str, space: Mapping[str, Mapping[str, Any]] | None = None,
                 description: str = "") -> None:
        if not configs:
            raise ValueError("Workload: configs is empty; record at least one config")
        if mode not in ("min", "max"):
            raise ValueError(f"Workload: mode must be 'min' or 'max', got {mode=}")
        if metric not in curves:
            raise ValueError(f"Workload: metric={metric!r} is not one of the recorded curves {sorted(curves)}")
        times = np.asarray(epoch_time_s, dtype=float)
        if times.ndim != 2 or times.shape[0] != len(configs) or times.shape[1] < 1:
            raise ValueError(f"Workload: epoch_time_s must have shape (n_configs={len(configs)}, n_epochs), "
                             f"got {times.shape}")
        if not np.all(np.isfinite(times)) or np.any(times < 0):
            raise ValueError("Workload: epoch_time_s must hold finite times >= 0")
        arrays = {}
        for key, values in curves.items():
            array = np.asarray(values, dtype=float)
            if array.shape != times.shape:
                raise ValueError(f"Workload: curves[{key!r}] has shape {array.shape}, epoch_time_s {times.shape}")
            arrays[key] = array
        self.name, self.metric, self.mode, self.description = name, metric, mode, description
        self.configs = [dict(c) for c in configs]
        self.curves = arrays
        self.epoch_time_s = times
        self.space_spec = {k: dict(v) for k, v in (space or _infer_space(self.configs)).items()}
        unknown = {k for c in self.configs for k in c} - set(self.space_spec)
        if unknown:
            raise ValueError(f"Workload: configs have keys {sorted(unknown)} that the space does not describe")
        self._numeric = [k for k, s in self.space_spec.items() if s["type"] in ("float", "int")]
        self._categorical = [k for k, s in self.space_spec.items() if s["type"] == "choice"]
        self._points = np.array([[self._scale(k, c[k]) for k in self._numeric] for c in self.configs], dtype=float)
        # Nearest = argmin |x - p|^2 + BIG * mismatches = argmin (|x|^2 + BIG * n_cat) - A @ [p, onehot],
        # with A = [2x, BIG * onehot(x)]: one product per lookup (constants in p do not move the argmin).
        self._codes: list[dict[Any, int]] = [{} for _ in self._categorical]
        codes = [[column.setdefault(_key(c.get(k)), len(column)) for k, column in zip(self._categorical, self._codes)]
                 for c in self.configs]
        self._offsets = np.cumsum([0] + [len(column) for column in self._codes])
        onehot = np.zeros((len(self.configs), int(self._offsets[-1])))
        for row, config_codes in enumerate(codes):
            for column, code in enumerate(config_codes):
                onehot[row, self._offsets[column] + code] = 1.0
        self._matrix = np.hstack([2.0 * self._points, _CATEGORY_MISMATCH * onehot])
        self._base = np.sum(self._points ** 2, axis=1) + _CATEGORY_MISMATCH * len(self._categorical)
        self._exact = {_key(c): i for i, c in reversed(list(enumerate(self.configs)))}
        self._cache: dict[Any, int] = {}  # bounded: a random searcher's configs never come twice
        self._sorted_keys = sorted(self.space_spec)  # a config's _key, without sorting it each time
        self._bounds = [_bounds(self.space_spec[k]) for k in self._numeric]
        self.max_epochs = int(times.shape[1])

    @property
    def metrics(self) -> list[str]:
        return list(self.curves)

    def __len__(self) -> int:
        return len(self.configs)

    def __repr__(self) -> str:
        return f"Workload({self.name!r}, {len(self)} configs x {self.max_epochs} epochs, {self.metric} {self.mode})"

    # The search space and lookups -----------------------------------------------------------------

    def space(self) -> dict[str, Domain]:
        """The search space as asynctune domains, for `run(config=...)` and the searchers."""
        domains: dict[str, Domain] = {}
        for key, spec in self.space_spec.items():
            if spec["type"] == "float":
                log = bool(spec.get("log"))
                domains[key] = Float(spec["low"], spec["high"], log=log, name="loguniform" if log else "uniform")
            elif spec["type"] == "int":
                log = bool(spec.get("log"))
                domains[key] = Integer(int(spec["low"]), int(spec["high"]), log=log,
                                       name="lograndint" if log else "randint", shown_high=int(spec["high"]) + 1)
            else:
                domains[key] = Categorical(list(spec["values"]))
        return domains

    def nearest(self, config: Mapping[str, Any]) -> int:
        """The index of the recorded config that answers `config` (itself when it was recorded)."""
        key = tuple([(k, _key(config.get(k))) for k in self._sorted_keys])  # == _key(config's keys in the space)
        index = self._exact.get(key)
        if index is None:
            index = self._cache.get(key)
        if index is None:
            vector = np.zeros(self._matrix.shape[1])
            vector[: len(self._numeric)] = [_scaled(config.get(k), *bounds)
                                            for k, bounds in zip(self._numeric, self._bounds)]
            for column, (k, codes) in enumerate(zip(self._categorical, self._codes)):
                code = codes.get(_key(config.get(k)))
                if code is not None:  # a value no recorded config has matches none
                    vector[len(self._numeric) + self._offsets[column] + code] = 1.0
            index = int(np.argmin(self._base - self._matrix @ vector))
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = index
        return index

    def _scale(self, key: str, value: Any) -> float:
        return _scaled(value, *_bounds(self.space_spec[key]))

    # Facts a benchmark needs ------------------------------------------------------------------------

    def best_value(self, metric: str | None = None, *, epochs: int | None = None) -> float:
        """The best value of `metric` any recorded config reaches (within its first `epochs`)."""
        curve = self.curves[metric or self.metric][:, : epochs or self.max_epochs]
        return float(np.nanmin(curve) if self.mode == "min" else np.nanmax(curve))

    def total_time_s(self) -> float:
        """Training every recorded config to the end, one after the other."""
        return float(self.epoch_time_s.sum())

    # Files ----------------------------------------------------------------------------------------

    def to_dict(self, *, digits: int = 5) -> dict[str, Any]:
        def rounded(array: np.ndarray) -> list[list[float]]:
            return [[float(f"{v:.{digits}g}") for v in row] for row in array.tolist()]

        return {
            "format": "asynctune-workload/1", "name": self.name, "description": self.description,
            "metric": self.metric, "mode": self.mode, "space": self.space_spec, "configs": self.configs,
            "curves": {k: rounded(v) for k, v in self.curves.items()}, "epoch_time_s": rounded(self.epoch_time_s),
        }

    def save(self, path: str) -> None:
        """Write the table as JSON (gzipped when the path ends in .gz)."""
        data = json.dumps(self.to_dict(), separators=(",", ":")).encode()
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)

    @classmethod
    def load(cls, path: str) -> Workload:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = json.loads(f.read())
        if data.get("format") != "asynctune-workload/1":
            raise ValueError(f"{path} is not an asynctune workload (format={data.get('format')!r})")
        return cls(data["name"], data["configs"], data["curves"], data["epoch_time_s"], metric=data["metric"],
                   mode=data["mode"], space=data.get("space"), description=data.get("description", ""))



def _bounds(spec: Mapping[str, Any]) -> tuple[float, float, bool]:
    """A numeric parameter's (low, high, log), with the bounds on the log scale when it is."""
    low, high, log = float(spec["low"]), float(spec["high"]), bool(spec.get("log"))
    return (math.log(low), math.log(high), True) if log else (low, high, False)


def _scaled(value: Any, low: float, high: float, log: bool) -> float:
    """A numeric value on [0, 1] between its bounds (0.5 when it is missing)."""
    if value is None:
        return 0.5
    value = math.log(max(float(value), 1e-300)) if log else float(value)
    return (value - low) / (high - low) if high > low else 0.0


def _key(value: Any) -> Any:
    """A hashable, order-independent form of a config or value."""
    if value.__class__ in (str, int):  # the usual values first (isinstance of Mapping is slow)
        return value
    if isinstance(value, Mapping):
        return tuple(sorted((k, _key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 64 and 64.0 are the same batch size
    return value


def _infer_space(configs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    space: dict[str, dict[str, Any]] = {}
    for key in sorted({k for c in configs for k in c}):
        values = [c.get(key) for c in configs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            kind = "int" if all(isinstance(v, int) for v in values) else "float"
            space[key] = {"type": kind, "low": min(values), "high": max(values), "log": False}
        else:
            space[key] = {"type": "choice", "values": list(dict.fromkeys(values))}
    return space
