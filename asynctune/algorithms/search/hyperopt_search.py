"""HyperOpt's TPE (Bergstra et al., 2011 and 2013) as an asynctune searcher, through its trial store.

hyperopt has no ask-and-tell API, but its `tpe.suggest(new_ids, domain, trials, seed)` is one:
each suggestion inserts a new trial document into a `hyperopt.Trials`, and a trial's end writes
its loss into that document. Trials asked for but not told yet stay in state NEW, which TPE
leaves out of its model, so several trials may be asked for before any is told.

The space is either hyperopt's own (`hp.uniform`, `hp.choice` trees with conditional
parameters, ...), given as `space=`, or asynctune's `run(config=...)` turned into hp
expressions (a `choice` of dicts becomes an `hp.choice` tree).

hyperopt is an optional extra: `pip install "asynctune[hyperopt]"`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import cloudpickle
import numpy as np

from ...errors import SearchSpaceError
from ...core.space import Branch, Categorical, Domain, Float, Function, Grid, Integer, Normal, Space, format_path
from ..base import Searcher
from .model_based import number_in_domain

INSTALL_HINT = 'pip install "asynctune[hyperopt]"'
_TRANSIENT = ("_lock", "_domain")  # rebuilt on restore: a lock cannot be pickled


class HyperOptSearch(Searcher):
    """Tree-structured Parzen estimators from the hyperopt package, trial by trial.

    TPE (Bergstra et al., 2011) models p(x | good) and p(x | bad) with the best `gamma`
    fraction of finished trials as "good", and proposes the candidate maximising their ratio;
    the first `n_initial_points` trials are random draws from the space.

    Example:
        >>> from hyperopt import hp
        >>> space = {"optimizer": hp.choice("optimizer", [
        ...     {"name": "sgd", "momentum": hp.uniform("momentum", 0, 0.99)},
        ...     {"name": "adam"}]), "lr": hp.loguniform("lr", -9, -2)}
        >>> run(train, search_alg=HyperOptSearch(space, metric="loss", mode="min", seed=0),
        ...     num_samples=30)

    Args:
        space: A hyperopt space (a dict of `hp.*` expressions, nested `hp.choice` trees
            allowed); then `run(config=...)` may hold only constants. None: use run()'s space,
            converted to hp expressions (grid_search and sample_from are refused).
        metric, mode: What to optimise; run()'s when None.
        points_to_evaluate: Configs to try first, keyed by the hp labels (for run()'s space:
            the config keys, "a/b" for nested ones); an `hp.choice` takes the option itself or
            its index. Labels a point leaves out are drawn by the searcher.
        n_initial_points: Random trials before TPE's model is used (hyperopt's n_startup_jobs).
        seed: Seeds every draw; the same results then give the same suggestions.
        gamma: The fraction of trials TPE counts as good.
    """

    slow = True  # fitting TPE on hundreds of trials takes a while: the controller uses a thread

    def __init__(self, space: Mapping[str, Any] | Any | None = None, metric: str | None = None,
                 mode: str | None = None, points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 n_initial_points: int = 20, seed: int | None = None, gamma: float = 0.25) -> None:
        _import_hyperopt()
        if isinstance(space, Space) or (space is not None and _contains_asynctune_domain(space)):
            raise SearchSpaceError("HyperOptSearch(space=...) takes a hyperopt space (hp.*); pass an asynctune "
                                   "space as run(config=...) instead")
        if points_to_evaluate is not None and (isinstance(points_to_evaluate, Mapping) or not all(
                isinstance(p, Mapping) for p in points_to_evaluate)):
            raise ValueError(f"HyperOptSearch: points_to_evaluate must be a list of dicts, got {points_to_evaluate!r}")
        if isinstance(n_initial_points, bool) or not isinstance(n_initial_points, int) or n_initial_points < 1:
            raise ValueError(f"HyperOptSearch: n_initial_points must be an integer >= 1, got {n_initial_points=}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
            raise ValueError(f"HyperOptSearch: gamma must be a number in (0, 1), got {gamma=}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"HyperOptSearch: seed must be an integer or None, got {seed=}")
        super().__init__(metric, mode)
        self.user_space = space
        self.seed = seed
        self.points_to_evaluate = [dict(p) for p in points_to_evaluate or []]
        self.n_initial_points, self.gamma = n_initial_points, float(gamma)
        self.hp_space: Any = None
        self.trials: Any = None  # hyperopt.Trials: every document asked for and told
        self._live: dict[str, int] = {}  # our trial id -> hyperopt's tid, asked for, not yet told
        self._rng: np.random.Generator | None = None
        self._lock = threading.Lock()
        self._domain: Any = None

    def set_search_properties(self, metric: str | None, mode: str | None, space: Space,
                              *, seed: int | None = None) -> None:
        super().set_search_properties(metric, mode, space, seed=seed)
        if self.metric is None or self.mode is None:
            missing = "metric" if self.metric is None else "mode"
            raise ValueError(f"HyperOptSearch: {missing} is not set; pass {missing}= here or to run()")
        if self.user_space is not None:
            domains = [format_path(p.path) for p in space.parameters if not isinstance(p.domain, Function)]
            domains += [format_path(path) for path, _ in space.grid]
            if domains:
                raise SearchSpaceError(f"HyperOptSearch(space=...) defines the search space; run(config=...) may then "
                                       f"hold only constants, but has domains at {', '.join(domains)}")
            self.hp_space = self.user_space
        else:
            self.hp_space = to_hyperopt_space(space.config)
        hpo = _import_hyperopt()
        self.trials = hpo.Trials()
        self._rng = np.random.default_rng(self.seed)
        self._domain = hpo.base.Domain(_objective_never_called, self.hp_space)
        self._labels = set(self._domain.params)
        self._options = _choice_options(self.hp_space)
        for index, point in enumerate(self.points_to_evaluate):
            unknown = sorted(set(point) - self._labels)
            if unknown:
                raise ValueError(f"HyperOptSearch: points_to_evaluate[{index}] has keys {unknown} that are no labels "
                                 f"of the space; labels: {sorted(self._labels)}")
            if self.user_space is None:
                _check_point_values(space, point)

    # The Searcher interface ---------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.trials is None or self._rng is None or self.space is None:
            raise RuntimeError("HyperOptSearch.suggest called before set_search_properties")
        hpo = _import_hyperopt()
        with self._lock:
            tid = self.trials.new_trial_ids(1)
            self.trials.refresh()
            doc = hpo.tpe.suggest(tid, self._domain, self.trials, int(self._rng.integers(2**31 - 1)),
                                  n_startup_jobs=self.n_initial_points, gamma=self.gamma, verbose=False)[0]
            point = self.points_to_evaluate.pop(0) if self.points_to_evaluate else None
            if point is not None:
                self._impose(doc, point)
            values = {label: vals[0] for label, vals in doc["misc"]["vals"].items() if vals}
            try:
                sampled = hpo.space_eval(self.hp_space, values)
            except (KeyError, IndexError) as exc:
                raise ValueError(f"HyperOptSearch: points_to_evaluate entry {point} leaves out a label its branch "
                                 f"needs: {exc}") from exc
            self.trials.insert_trial_docs([doc])
            self.trials.refresh()
            self._live[trial_id] = doc["tid"]
        config = self.space.sample(np.random.default_rng((self.seed or 0, len(self.trials))))  # constants
        sampled = _native_tree(sampled)
        config.update(sampled if self.user_space is not None else _ordered_like(self.space.config, sampled))
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        hpo = _import_hyperopt()
        with self._lock:
            tid = self._live.pop(trial_id, None)
            if tid is None or self.trials is None:
                return
            doc = next(d for d in self.trials._dynamic_trials if d["tid"] == tid)
            loss = None if error or result is None else self._loss(result.get(self.metric))
            if loss is None:
                doc["state"], doc["result"] = hpo.JOB_STATE_ERROR, {"status": hpo.STATUS_FAIL}
            else:
                doc["state"], doc["result"] = hpo.JOB_STATE_DONE, {"status": hpo.STATUS_OK, "loss": loss}
            self.trials.refresh()

    def save(self, path: str) -> None:
        with self._lock:
            state = self.__getstate__()
        with open(path, "wb") as f:
            cloudpickle.dump(state, f)

    def restore(self, path: str) -> None:
        with open(path, "rb") as f:
            self.__setstate__(cloudpickle.load(f))

    def __getstate__(self) -> dict[str, Any]:  # run() pickles the searcher into the run spec too
        return {k: v for k, v in self.__dict__.items() if k not in _TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._domain = None
        if self.hp_space is not None:
            self._domain = _import_hyperopt().base.Domain(_objective_never_called, self.hp_space)

    # Helpers ------------------------------------------------------------------------------------

    def _loss(self, value: Any) -> float | None:
        """The metric as hyperopt's loss (minimised); NaN, inf and non-numbers are failures."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
            return None
        return float(value) if self.mode == "min" else -float(value)

    def _impose(self, doc: dict[str, Any], point: Mapping[str, Any]) -> None:
        """Write a point's values into a suggested document, so TPE learns from it as from its own."""
        options = self._options
        for label, value in point.items():
            if label in options and not _is_index(value, options[label]):
                try:
                    value = options[label].index(value)
                except ValueError:
                    raise ValueError(f"HyperOptSearch: {value!r} is not a constant option of hp.choice({label!r}, ...); "
                                     f"give its index (0 to {len(options[label]) - 1})") from None
            doc["misc"]["vals"][label] = [value]
            doc["misc"]["idxs"][label] = [doc["tid"]]

    def __repr__(self) -> str:
        return f"HyperOptSearch(metric={self.metric!r}, mode={self.mode!r}, n_initial_points={self.n_initial_points})"


def to_hyperopt_space(config: Any, path: tuple = ()) -> Any:
    """asynctune's space as hp expressions, labelled by their path ("a/b"); a choice of dicts
    becomes an hp.choice tree."""
    hp = _import_hyperopt().hp
    label = "/".join(str(key) for key in path)  # what points_to_evaluate names: "lr", "optimizer/momentum"
    if isinstance(config, Grid):
        raise SearchSpaceError(f"HyperOptSearch cannot search grid_search (at {format_path(path)}); use choice, or "
                               "the default searcher for a grid")
    if isinstance(config, Function):
        raise SearchSpaceError(f"HyperOptSearch cannot search sample_from (at {format_path(path)}); TPESearch and "
                               "OptunaSearch compute it from the values they propose")
    if isinstance(config, Categorical):
        return hp.choice(label, [to_hyperopt_space(c, path + (i,)) for i, c in enumerate(config.categories)])
    if isinstance(config, Domain):
        return _hp_domain(hp, label, config)
    if isinstance(config, Mapping):
        return {key: to_hyperopt_space(value, path + (key,)) for key, value in config.items()}
    if isinstance(config, (list, tuple)):
        return type(config)(to_hyperopt_space(value, path + (i,)) for i, value in enumerate(config))
    return config


def _check_point_values(space: Space, point: Mapping[str, Any]) -> None:
    """A point's numbers must lie in their domains, as every other searcher requires."""
    by_label = {"/".join(str(k.index) if isinstance(k, Branch) else str(k) for k in p.path): p.domain
                for p in space.parameters}
    for label, value in point.items():
        domain = by_label.get(label)
        if isinstance(domain, (Float, Integer, Normal)):
            number_in_domain(domain, value, f"HyperOptSearch: points_to_evaluate value {value!r} at {label!r}")


def _hp_domain(hp: Any, label: str, domain: Domain) -> Any:
    scope = _import_hyperopt().pyll.scope
    # hp.quniform rounds to a multiple of q that may lie outside [low, high] (quniform(0.1, 1,
    # 0.25) gives 0.0) and counts integers' multiples from 0, not from low as qrandint does: the
    # value hyperopt draws is put on the domain's own grid, inside its bounds.
    if isinstance(domain, Float):
        if domain.log:
            low, high = math.log(domain.low), math.log(domain.high)
            if domain.q:
                return scope.asynctune_quantize(hp.qloguniform(label, low, high, domain.q), domain.low, domain.high,
                                                domain.q, False)
            return hp.loguniform(label, low, high)
        if domain.q:
            return scope.asynctune_quantize(hp.quniform(label, domain.low, domain.high, domain.q), domain.low,
                                            domain.high, domain.q, False)
        return hp.uniform(label, domain.low, domain.high)
    if isinstance(domain, Integer):
        if domain.log:
            # Drawn on [low, high + 1) as Integer.sample does, so high is as likely as its neighbours.
            drawn = hp.loguniform(label, math.log(domain.low), math.log(domain.high + 1))
            return scope.asynctune_quantize(drawn, domain.low, domain.high, domain.q, True)
        if domain.q == 1:
            return hp.randint(label, domain.low, domain.high + 1)
        return scope.asynctune_quantize(hp.uniform(label, domain.low, domain.high), domain.low, domain.high,
                                        domain.q, True)
    if isinstance(domain, Normal):
        return hp.qnormal(label, domain.mean, domain.sd, domain.q) if domain.q else hp.normal(label, domain.mean,
                                                                                              domain.sd)
    raise SearchSpaceError(f"HyperOptSearch cannot search {domain!r} (at {label})")


def _choice_options(space: Any) -> dict[str, list[Any]]:
    """Each hp.choice's label and its options; an option holding hp expressions is left as
    None (it can be given by index only)."""
    pyll = _import_hyperopt().pyll
    found: dict[str, list[Any]] = {}
    for node in pyll.dfs(pyll.as_apply(space)):
        if node.name == "switch":
            label = node.pos_args[0].arg["label"].obj
            found[label] = [None if any(n.name == "hyperopt_param" for n in pyll.dfs(option)) else pyll.rec_eval(option)
                            for option in node.pos_args[1:]]
    return found


def _is_index(value: Any, options: list[Any]) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value not in options


def _contains_asynctune_domain(node: Any) -> bool:
    if isinstance(node, Domain):
        return True
    if isinstance(node, Mapping):
        return any(_contains_asynctune_domain(v) for v in node.values())
    return False


def _native_tree(value: Any) -> Any:
    """hyperopt's evaluated space as plain data; its tuples (hyperopt evaluates every list to
    one) become lists, as in the configs every other searcher builds."""
    if isinstance(value, Mapping):
        return {k: _native_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native_tree(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _ordered_like(space: Any, value: Any) -> Any:
    """`value` with its dicts' keys in the order of run()'s space (hyperopt sorts them); in a
    choice, the order of the category dict with the same keys."""
    if isinstance(space, Categorical):
        for category in space.categories:
            if isinstance(category, Mapping) and isinstance(value, Mapping) and set(category) == set(value):
                return _ordered_like(category, value)
        return value
    if isinstance(space, Mapping) and isinstance(value, Mapping):
        keys = [k for k in space if k in value] + [k for k in value if k not in space]
        return {k: _ordered_like(space.get(k), value[k]) for k in keys}
    if isinstance(space, (list, tuple)) and isinstance(value, list) and len(space) == len(value):
        return [_ordered_like(s, v) for s, v in zip(space, value)]
    return value


def _objective_never_called(_: Any) -> None:  # hyperopt's Domain wants one; we only ask and tell
    raise RuntimeError("HyperOptSearch never evaluates through hyperopt")


def _import_hyperopt() -> Any:
    try:
        import hyperopt
        import hyperopt.pyll  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"HyperOptSearch needs hyperopt: {INSTALL_HINT}") from exc
    if "asynctune_quantize" not in hyperopt.pyll.scope._impls:  # also before a restored space is evaluated
        hyperopt.pyll.scope.define_pure(asynctune_quantize)
    return hyperopt


def asynctune_quantize(value: float, low: float, high: float, q: float, integer: bool) -> float | int:
    """A drawn value on the asynctune domain's grid of multiples of q, inside [low, high]."""
    if integer:
        return Integer(int(low), int(high), q=int(q)).quantize(min(math.floor(value), high) if q == 1 else value)
    return Float(low, high, q=q).quantize(value)
