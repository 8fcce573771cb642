"""What every model-based searcher shares: observations, warm starts, losses, state.

A model-based searcher (TPE, a Gaussian process, ...) proposes values for the searchable
parameters of a `Space` from the (values, loss) pairs of the trials that have ended. This module
keeps that bookkeeping in one place so each algorithm module holds only its model:

* values are dicts `{parameter path: value}` over the parameters that exist in the config
  (a parameter inside a `choice` exists only when its branch was chosen); a `choice` is stored
  as the index of its category, which is what `Space.sample(rng, fixed=...)` takes;
* the loss is the metric for mode "min" and its negation for "max"; NaN or inf counts as the
  worst loss (+inf); trials that error or never report the metric are ignored;
* `points_to_evaluate` run first, then `n_startup` startup trials (draws from the prior, or a
  subclass's `_startup`, e.g. TPESearch's space-filling design), then the model.
"""

from __future__ import annotations

import abc
import logging
import math
import os
import pickle
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import cloudpickle
import numpy as np

from ...errors import SearchSpaceError
from ...core.space import Branch, Categorical, Domain, Float, Function, Integer, Normal, Parameter, Path, Space, format_path
from ..base import Searcher
from .basic import check_no_grid

logger = logging.getLogger(__name__)

Values = dict[Path, Any]
Observation = tuple[Values, float]  # (values of the searchable parameters, loss to minimise)

_DOMAIN_NAMES = {Float: "(log/q)uniform", Integer: "(log/q)randint", Normal: "(q)randn", Categorical: "choice"}

# State that is rebuilt from the space (or cannot be pickled) rather than saved.
_TRANSIENT = ("space", "_lock", "_params")


class ModelBasedSearcher(Searcher):
    """Base class of searchers that fit a model to finished trials; subclasses write `_propose`.

    Args:
        metric: The result key to optimise; run()'s metric is used when None.
        mode: "min" or "max"; run()'s mode is used when None.
        points_to_evaluate: Configs (possibly partial) to try first; the parameters they leave
            out are drawn from the prior. They count towards num_samples.
        n_startup: How many trials are drawn from the prior before the model is used.
        seed: Seeds every random choice, so the same results give the same suggestions.
    """

    supported_domains: tuple[type[Domain], ...] = (Float, Integer, Normal, Categorical)

    def __init__(self, metric: str | None = None, mode: str | None = None, *,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 n_startup: int = 10, seed: int | None = None) -> None:
        name = type(self).__name__
        if points_to_evaluate is not None and (
                isinstance(points_to_evaluate, Mapping)
                or not all(isinstance(p, Mapping) for p in points_to_evaluate)):
            raise ValueError(f"{name}: points_to_evaluate must be a list of dicts, got {points_to_evaluate!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"{name}: seed must be an integer or None, got {seed=}")
        if isinstance(n_startup, bool) or not isinstance(n_startup, int) or n_startup < 0:
            raise ValueError(f"{name}: the number of startup trials must be an integer >= 0, got {n_startup!r}")
        super().__init__(metric, mode)
        self.seed = seed
        self.n_startup = n_startup
        self.points_to_evaluate = [dict(p) for p in points_to_evaluate or []]
        self.observations: list[Observation] = []
        self._points_used = 0
        self._live: dict[str, Values] = {}  # suggested, not yet complete
        self._latest_loss: dict[str, float] = {}  # the latest intermediate loss of a live trial
        self._failed: dict[str, Values] = {}  # completed in error: resume(errored=...) may run them again
        self._rng: np.random.Generator | None = None
        self._params: list[Parameter] = []
        self._lock = threading.Lock()  # a slow searcher's suggest runs in a thread

    # Setup --------------------------------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, space: Space,
                              *, seed: int | None = None) -> None:
        super().set_search_properties(metric, mode, space, seed=seed)
        name = type(self).__name__
        if self.metric is None or self.mode is None:
            missing = "metric" if self.metric is None else "mode"
            raise ValueError(f"{name}: {missing} is not set; pass {missing}= here or to run()")
        check_no_grid(space, name)
        for param in space.parameters:
            if not isinstance(param.domain, (Function, *self.supported_domains)):
                raise SearchSpaceError(
                    f"{name} does not support {param.domain!r} at {format_path(param.path)}; "
                    f"supported: {', '.join(_DOMAIN_NAMES[d] for d in self.supported_domains)} and sample_from")
        self._params = searchable_parameters(space)
        check_point_keys(space, self.points_to_evaluate, owner=name)
        for point in self.points_to_evaluate:
            values_from_point(self._params, point, owner=name)  # fail now, not at the trial

    def _searchable(self) -> list[Parameter]:
        if self.space is None:
            raise RuntimeError(f"{type(self).__name__}.suggest called before set_search_properties")
        if not self._params:
            self._params = searchable_parameters(self.space)
        return self._params

    # The Searcher interface ---------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        params = self._searchable()
        assert self.space is not None
        with self._lock:
            if self._rng is None:
                self._rng = np.random.default_rng(self.seed)
            rng = self._rng
            point = None
            if self._points_used < len(self.points_to_evaluate):
                point = self.points_to_evaluate[self._points_used]
                self._points_used += 1
            observations = list(self.observations)
            pending = list(self._live.values())
        # The model is fitted outside the lock: results may arrive meanwhile (slow searchers).
        if point is not None:
            values = complete_from_prior(params, values_from_point(params, point), rng)
        elif len(observations) < self.n_startup:
            values = self._startup(params, rng)
        else:
            proposed = self._propose(observations, pending, rng)
            values = complete_from_prior(params, proposed or {}, rng)
        config = self.space.sample(rng, fixed=values)
        with self._lock:
            self._live[trial_id] = values
        return config

    def _startup(self, params: list[Parameter], rng: np.random.Generator) -> Values:
        """Values for a startup trial (before the model is used): a draw from the prior."""
        return complete_from_prior(params, {}, rng)

    @abc.abstractmethod
    def _propose(self, observations: list[Observation], pending: list[Values],
                 rng: np.random.Generator) -> Values | None:
        """Values for the next trial from the finished ones (and the running ones, `pending`).

        May leave out parameters (or return None): those are drawn from the prior.
        """

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        loss = self._loss(result)
        if loss is not None:
            with self._lock:
                if trial_id in self._live:
                    self._latest_loss[trial_id] = loss

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        with self._lock:
            values = self._live.pop(trial_id, None)
            latest = self._latest_loss.pop(trial_id, None)
            failed = self.__dict__.setdefault("_failed", {})  # a searcher saved before it had one
            if values is None and not error:
                values = failed.pop(trial_id, None)  # run again after its failure: learnt from now
            if values is None or error:
                if values is not None:
                    failed[trial_id] = values
                return
            loss = self._loss(result) if result is not None else None
            if loss is None:
                loss = latest  # the final result lacks the metric: use the last one that had it
            if loss is not None:
                self.observations.append((values, loss))

    def _loss(self, result: Mapping[str, Any]) -> float | None:
        if self.metric not in result:
            return None
        try:
            value = float(result[self.metric])
        except (TypeError, ValueError):
            logger.warning("%s: metric %r is not a number: %r", type(self).__name__, self.metric,
                           result[self.metric])
            return None
        if not math.isfinite(value):
            return math.inf  # NaN and inf count as the worst result
        return -value if self.mode == "max" else value

    # State --------------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # run() pickles the searcher with its other arguments, for resuming the experiment.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def save(self, path: str) -> None:
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k not in _TRANSIENT}
            _write_atomically(path, cloudpickle.dumps(state))  # cloudpickle: gamma may be a lambda

    def restore(self, path: str) -> None:
        with open(path, "rb") as f:
            state = pickle.load(f)
        with self._lock:
            self.__dict__.update({k: v for k, v in state.items() if k not in _TRANSIENT})


# --- values of the searchable parameters --------------------------------------------------------

def searchable_parameters(space: Space) -> list[Parameter]:
    """The parameters a model searches over: every domain but sample_from, parents first."""
    return [p for p in space.parameters if not isinstance(p.domain, Function)]


def is_active(param: Parameter, values: Mapping[Path, Any]) -> bool:
    """Whether the parameter exists in a config with these values (its branch was chosen)."""
    return param.condition is None or values.get(param.condition[0]) == param.condition[1]


def complete_from_prior(params: Sequence[Parameter], values: Mapping[Path, Any],
                        rng: np.random.Generator) -> Values:
    """`values` plus prior draws for the active parameters it lacks, without inactive ones."""
    out: Values = {}
    for param in params:  # parents come before the parameters of their branches
        if not is_active(param, out):
            continue
        if param.path in values:
            out[param.path] = values[param.path]
        elif isinstance(param.domain, Categorical):
            out[param.path] = param.domain.sample_index(rng)
        else:
            out[param.path] = param.domain.sample(rng)
    return out


def values_from_point(params: Sequence[Parameter], point: Mapping[str, Any], *, owner: str = "") -> Values:
    """The parameter values a (partial) user config sets; a choice maps to its category index."""
    out: Values = {}
    for param in params:
        if not is_active(param, out):
            continue
        found, value = lookup(point, param.path)
        if not found:
            continue
        where = f"{owner}: points_to_evaluate value {value!r} at {format_path(param.path)}"
        if isinstance(param.domain, Categorical):
            out[param.path] = _category_index(param.domain, value, where)
        else:
            out[param.path] = number_in_domain(param.domain, value, where)
    return out


def number_in_domain(domain: Domain, value: Any, where: str) -> float | int:
    """A user-given value of a numeric domain, checked: ValueError naming `where` if outside."""
    if isinstance(domain, (Float, Integer)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not domain.low <= value <= domain.high:
            raise ValueError(f"{where} is not a number in [{domain.low}, {domain.high}]")
        if isinstance(domain, Integer) and value != int(value):
            raise ValueError(f"{where} is not an integer")  # int() would run another value silently
        return int(value) if isinstance(domain, Integer) else float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ValueError(f"{where} is not a finite number")
    return float(value)


def check_point_keys(space: Space, points: Sequence[Mapping[str, Any]], *, owner: str) -> None:
    """Refuse a point that sets a key the search space does not have: a misspelt key would
    otherwise be dropped (or added to the config) and the point the user meant never run."""
    for index, point in enumerate(points):
        unknown = _unknown_keys(space.config, point, ())
        if unknown is not None:
            path, known = unknown
            raise ValueError(f"{owner}: points_to_evaluate[{index}] sets {format_path(path)}, which is not in the "
                             f"search space; the keys there are {sorted(known)}")


def _unknown_keys(space: Any, point: Any, path: Path) -> tuple[Path, list[str]] | None:
    if not (isinstance(space, Mapping) and isinstance(point, Mapping)):
        return None  # a leaf, or a choice whose categories values_from_point checks
    for key, value in point.items():
        if key not in space:
            return path + (key,), list(space)
        found = _unknown_keys(space[key], value, path + (key,))
        if found is not None:
            return found
    return None


def lookup(point: Any, path: Path) -> tuple[bool, Any]:
    node = point
    for key in path:
        if isinstance(key, Branch):
            continue  # a branch is the category chosen above: the config has no level for it
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _category_index(domain: Categorical, value: Any, where: str) -> int:
    for index, category in enumerate(domain.categories):
        if _same_category(category, value):
            return index
    raise ValueError(f"{where} is none of the categories {domain.categories!r}")


def _same_category(category: Any, value: Any) -> bool:
    """A dict category matches a dict value whose keys it has and whose constants agree."""
    if isinstance(category, Mapping) and isinstance(value, Mapping):
        return set(value) <= set(category) and all(
            isinstance(category[k], Domain) or _same_category(category[k], value[k]) for k in value)
    try:
        return bool(category == value)
    except Exception:  # e.g. comparing numpy arrays
        return False


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".searcher-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
