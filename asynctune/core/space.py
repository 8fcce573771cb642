"""The search-space DSL: domains, grid expansion, seeded sampling and conditional values.

A search space is a nested dict (lists allowed) whose leaves are constants or domains:

    >>> space = {
    ...     "lr": loguniform(1e-4, 1e-1),
    ...     "layers": choice([1, 2, 3]),
    ...     "opt": grid_search(["sgd", "adam"]),
    ...     "wd": sample_from(lambda config: config["lr"] / 10),
    ... }

`Space(space)` checks it and samples it. Grid values are expanded as a cross product and
`num_samples` repeats the whole grid (Ray Tune's semantics). `sample_from(fn)` values are
resolved lazily: `fn` receives the config being built and may read any other value, also
another `sample_from`, in any order; a cycle is an error that names the keys involved.

Searchers see the space as a flat list of `Parameter`s, each with a path into the config and,
for values inside a `choice` of dicts, the branch that must be chosen for it to exist.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SearchSpaceError

Path = tuple  # keys (str) and list indices (int) from the root; Branch(i) inside a choice


@dataclass(frozen=True)
class Branch:
    """A path element meaning "inside category i of the choice at this point"."""

    index: int

    def __repr__(self) -> str:
        return f"<{self.index}>"


def format_path(path: Path) -> str:
    """Render a path the way a user would index the config: config["a"]["b"][0]."""
    parts = []
    for key in path:
        if isinstance(key, Branch):
            parts.append(f"<choice {key.index}>")
        else:
            parts.append(f"[{key!r}]")
    return "config" + "".join(parts)


class Domain:
    """A set of values a hyperparameter may take, and how to sample it."""

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError


class Float(Domain):
    """A float in [low, high], optionally on a log scale and/or rounded to a multiple of q."""

    def __init__(self, low: float, high: float, *, log: bool = False, q: float | None = None,
                 base: float = 10, name: str = "uniform") -> None:
        where = f"{name}(low={low!r}, high={high!r}{f', q={q!r}' if q is not None else ''})"
        _check_number(low, "low", where)
        _check_number(high, "high", where)
        if not low < high:
            raise SearchSpaceError(f"{where}: low must be less than high")
        if log and low <= 0:
            raise SearchSpaceError(f"{where}: a log-scale domain needs low > 0")
        if q is not None:
            _check_number(q, "q", where)
            if not q > 0:
                raise SearchSpaceError(f"{where}: q must be > 0")
            if _first_multiple(low, q) > high + 1e-9 * max(1.0, abs(high)):
                # Every value would be rounded to a multiple of q outside [low, high].
                raise SearchSpaceError(f"{where}: no multiple of q lies in [low, high]")
        _check_base(base, where)
        if not math.isfinite(float(high) - float(low)):
            raise SearchSpaceError(f"{where}: the range is too wide for a float (high - low overflows)")
        self.low, self.high, self.log, self.q, self.base = float(low), float(high), log, q, base
        self.name = name

    def sample(self, rng: np.random.Generator) -> float:
        # low + (high - low) * random() is what Generator.uniform computes (the same draws as
        # before on x86-64; a compiler that fuses the multiply-add may differ in the last bit),
        # without its argument handling: a third of the time.
        if self.log:
            low, high = math.log(self.low), math.log(self.high)
            value = math.exp(low + (high - low) * rng.random())
        else:
            value = self.low + (self.high - self.low) * rng.random()
        return self.quantize(value)

    def quantize(self, value: float) -> float:
        if self.q is None:
            return float(value)
        value = round(value / self.q) * self.q
        # Rounding may step just outside the bounds; stay on a multiple of q inside them.
        while value > self.high + 1e-12:
            value -= self.q
        while value < self.low - 1e-12:
            value += self.q
        return float(round(value, 12))

    def __repr__(self) -> str:
        q = f", q={self.q}" if self.q is not None else ""
        return f"{self.name}({self.low}, {self.high}{q})"


class Integer(Domain):
    """An integer in [low, high] (both inclusive here), optionally log-scaled or a multiple of q."""

    def __init__(self, low: int, high: int, *, log: bool = False, q: int = 1,
                 name: str = "randint", shown_high: int | None = None) -> None:
        shown = high if shown_high is None else shown_high
        where = f"{name}(low={low!r}, high={shown!r}{f', q={q!r}' if q != 1 else ''})"
        for value, label in ((low, "low"), (shown, "high"), (q, "q")):  # as the user wrote them
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SearchSpaceError(f"{where}: {label} must be an integer, got {value!r}")
        if low > high:
            raise SearchSpaceError(f"{where}: the range is empty")
        if q < 1:
            raise SearchSpaceError(f"{where}: q must be >= 1")
        if log and low <= 0:
            raise SearchSpaceError(f"{where}: a log-scale domain needs low > 0")
        if not log and q == 1 and not -2**63 <= low <= high < 2**63:
            raise SearchSpaceError(f"{where}: the bounds must fit in 64-bit integers (numpy draws them)")
        self.low, self.high, self.log, self.q, self.name = int(low), int(high), log, int(q), name

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:  # as Float.sample: Generator.uniform's arithmetic
            low, high = math.log(self.low), math.log(self.high + 1)
            value = math.exp(low + (high - low) * rng.random())
            return self.quantize(min(math.floor(value), self.high))
        if self.q == 1:
            return int(rng.integers(self.low, self.high + 1))
        return self.quantize(rng.uniform(self.low, self.high))

    def quantize(self, value: float) -> int:
        value = int(round((value - self.low) / self.q)) * self.q + self.low
        while value > self.high:
            value -= self.q
        return int(max(value, self.low))

    def __repr__(self) -> str:
        return f"{self.name}({self.low}, {self.high})"


class Normal(Domain):
    """A normally distributed float, optionally rounded to a multiple of q."""

    def __init__(self, mean: float = 0.0, sd: float = 1.0, *, q: float | None = None) -> None:
        where = f"randn(mean={mean!r}, sd={sd!r})" if q is None else f"qrandn(mean={mean!r}, sd={sd!r}, q={q!r})"
        _check_number(mean, "mean", where)
        _check_number(sd, "sd", where)
        if not sd > 0:
            raise SearchSpaceError(f"{where}: sd must be > 0")
        if q is not None:
            _check_number(q, "q", where)
            if not q > 0:
                raise SearchSpaceError(f"{where}: q must be > 0")
        self.mean, self.sd, self.q = float(mean), float(sd), q

    def sample(self, rng: np.random.Generator) -> float:
        value = rng.normal(self.mean, self.sd)
        if self.q is not None:
            value = round(value / self.q) * self.q
        return float(value)

    def __repr__(self) -> str:
        return f"randn({self.mean}, {self.sd})"


class Categorical(Domain):
    """One of a list of values; a value may itself be a dict of domains (a conditional branch)."""

    def __init__(self, categories: Sequence[Any]) -> None:
        self.categories = _values_list(categories, "choice(categories={!r}): categories must be a list")
        if len(self.categories) == 0:
            raise SearchSpaceError("choice(categories=[]): needs at least one category")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.categories[self.sample_index(rng)]

    def sample_index(self, rng: np.random.Generator) -> int:
        return int(rng.integers(len(self.categories)))

    def __repr__(self) -> str:
        return f"choice({self.categories!r})"


class Grid(Domain):
    """Every value in turn: the grid is the cross product of all grid_search values."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = _values_list(values, "grid_search(values={!r}): values must be a list")
        if len(self.values) == 0:
            raise SearchSpaceError("grid_search(values=[]): needs at least one value")

    def __repr__(self) -> str:
        return f"grid_search({self.values!r})"


class Function(Domain):
    """A value computed from the rest of the config: fn(config) -> value."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise SearchSpaceError(f"sample_from(fn={fn!r}): fn must be callable")
        self.fn = fn

    def __repr__(self) -> str:
        return f"sample_from({getattr(self.fn, '__name__', self.fn)!r})"


def _values_list(values: Any, error: str) -> list[Any]:
    """The values of a choice or grid as a list; a 1-D numpy array (np.linspace(...)) is taken
    too, and numpy scalars become Python numbers, so configs hold plain int and float."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.tolist()
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise SearchSpaceError(error.format(values))
    return [_native(value) for value in values]


def _first_multiple(low: float, q: float) -> float:
    """The smallest multiple of q that is >= low (up to rounding)."""
    return math.ceil(low / q - 1e-9) * q


def _last_below(high: Any) -> Any:
    """The largest value below an exclusive integer bound; anything else is left for Integer to name."""
    return high - 1 if isinstance(high, (int, np.integer)) and not isinstance(high, bool) else high


def _check_base(base: Any, where: str) -> None:
    _check_number(base, "base", where)
    if base <= 1:
        raise SearchSpaceError(f"{where}: base must be > 1, got {base!r}")


def _check_number(value: Any, label: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise SearchSpaceError(f"{where}: {label} must be a finite number, got {value!r}")


# --- the public constructors (Ray Tune's names and semantics) ---------------------------------

def uniform(low: float, high: float) -> Float:
    """A float drawn uniformly from [low, high]."""
    return Float(low, high)


def loguniform(low: float, high: float, base: float = 10) -> Float:
    """A float whose logarithm is uniform in [log(low), log(high)]; low must be > 0."""
    return Float(low, high, log=True, base=base, name="loguniform")


def quniform(low: float, high: float, q: float) -> Float:
    """uniform(low, high) rounded to a multiple of q."""
    return Float(low, high, q=q, name="quniform")


def qloguniform(low: float, high: float, q: float, base: float = 10) -> Float:
    """loguniform(low, high) rounded to a multiple of q."""
    return Float(low, high, log=True, q=q, base=base, name="qloguniform")


def randint(low: int, high: int) -> Integer:
    """An integer in [low, high): high is exclusive, as in random.randrange and Ray Tune."""
    return Integer(low, _last_below(high), name="randint", shown_high=high)


def lograndint(low: int, high: int, base: float = 10) -> Integer:
    """An integer in [low, high) drawn on a log scale; high is exclusive, as in Ray Tune.

    `base` is accepted for Ray Tune's signature; the distribution does not depend on it.
    """
    _check_base(base, f"lograndint(low={low!r}, high={high!r})")
    return Integer(low, _last_below(high), log=True, name="lograndint", shown_high=high)


def qlograndint(low: int, high: int, q: int, base: float = 10) -> Integer:
    """A multiple of q (counted from low) in [low, high] drawn on a log scale: high is inclusive,
    as in Ray Tune's qlograndint.

        >>> qlograndint(8, 1024, 8)  # a batch size: 8, 16, ..., 1024, small ones as likely as large
    """
    _check_base(base, f"qlograndint(low={low!r}, high={high!r}, q={q!r})")
    return Integer(low, high, log=True, q=q, name="qlograndint")


def qrandint(low: int, high: int, q: int = 1) -> Integer:
    """A multiple of q (counted from low) in [low, high]: high is inclusive, as in Ray Tune."""
    return Integer(low, high, q=q, name="qrandint")


def randn(mean: float = 0.0, sd: float = 1.0) -> Normal:
    """A float drawn from a normal distribution."""
    return Normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Normal:
    """randn(mean, sd) rounded to a multiple of q."""
    return Normal(mean, sd, q=q)


def choice(categories: Sequence[Any]) -> Categorical:
    """One of the categories, uniformly; a category may be a dict of domains (conditional)."""
    return Categorical(categories)


def grid_search(values: Sequence[Any]) -> Grid:
    """Try every value: trials are the cross product of all grid_search values."""
    return Grid(values)


def sample_from(fn: Callable[[Any], Any]) -> Function:
    """A value computed by fn(config) from the other values of the same config."""
    return Function(fn)


# A constructor left uncalled in a config ({"lr": loguniform}) is a slip, not a constant.
_CONSTRUCTORS = {f.__name__: f for f in (uniform, loguniform, quniform, qloguniform, randint, lograndint, qrandint,
                                         qlograndint, randn, qrandn, choice, grid_search, sample_from)}


# --- the space --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Parameter:
    """One searchable leaf: its path in the config, its domain, and the branch it lives in.

    `condition` is None for a parameter that always exists, or `(choice_path, index)` when it
    exists only if the choice at `choice_path` picked category `index`.
    """

    path: Path
    domain: Domain
    condition: tuple[Path, int] | None = None

    @property
    def name(self) -> str:
        return "/".join(repr(k) if isinstance(k, Branch) else str(k) for k in self.path)


class Space:
    """A checked search space: lists its parameters and grid, and samples configs from it.

    Args:
        config: The nested dict of constants and domains passed to `run(config=...)`.
    """

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise SearchSpaceError(f"config must be a dict of hyperparameters, got {type(config).__name__}")
        self.config = config
        self.parameters: list[Parameter] = []
        self.grid: list[tuple[Path, Grid]] = []
        self._collect(config, (), None)
        self.has_functions = any(isinstance(p.domain, Function) for p in self.parameters)
        # Sample once so that sample_from errors (cycles, missing keys) surface now, named.
        self.sample(np.random.default_rng(0), next(self.iter_grid_points()))

    # Structure -------------------------------------------------------------------------------

    def _collect(self, node: Any, path: Path, condition: tuple[Path, int] | None) -> None:
        if isinstance(node, Grid):
            if condition is not None:
                raise SearchSpaceError(f"{format_path(path)}: grid_search cannot sit inside a choice")
            self.grid.append((path, node))
        elif isinstance(node, Categorical):
            self.parameters.append(Parameter(path, node, condition))
            for index, category in enumerate(node.categories):
                if _contains_domain(category):
                    self._collect(category, path + (Branch(index),), (path, index))
        elif isinstance(node, Domain):
            self.parameters.append(Parameter(path, node, condition))
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise SearchSpaceError(f"{format_path(path)}: keys must be strings, got {key!r}")
                self._collect(value, path + (key,), condition)
        elif isinstance(node, (list, tuple)):
            for index, value in enumerate(node):
                self._collect(value, path + (index,), condition)
        elif callable(node) and getattr(node, "__name__", None) in _CONSTRUCTORS \
                and _CONSTRUCTORS[node.__name__] is node:
            raise SearchSpaceError(f"{format_path(path)} is the function {node.__name__} itself, not a domain; "
                                   f"call it: {node.__name__}(...)")

    @property
    def is_empty(self) -> bool:
        return not self.parameters and not self.grid

    @property
    def grid_size(self) -> int:
        return math.prod(len(g.values) for _, g in self.grid) if self.grid else 1

    def grid_points(self) -> list[dict[Path, Any]]:
        """Every combination of grid_search values, as {path: value}, in a stable order."""
        return list(self.iter_grid_points())

    def iter_grid_points(self) -> Iterator[dict[Path, Any]]:
        """grid_points() one at a time: a grid of millions of points is never held in memory."""
        paths = [p for p, _ in self.grid]
        for combo in itertools.product(*(g.values for _, g in self.grid)):
            yield dict(zip(paths, combo))

    # Sampling --------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, fixed: Mapping[Path, Any] | None = None) -> dict[str, Any]:
        """One config: grid and `fixed` values where given, seeded random draws elsewhere.

        `fixed` maps parameter paths (and grid paths) to values; for a `choice` the value is the
        index of the category. Searchers use it to turn their proposals into configs.
        """
        return _Resolver(rng, fixed or {}).build(self.config)


def _contains_domain(node: Any) -> bool:
    if isinstance(node, Domain):
        return True
    if isinstance(node, Mapping):
        return any(_contains_domain(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_contains_domain(v) for v in node)
    return False


_PLAIN_DOMAINS = frozenset({Float, Integer, Normal})  # exactly these: a subclass goes the long way
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


class _Pending:
    __slots__ = ("function", "path")

    def __init__(self, function: Function, path: Path) -> None:
        self.function, self.path = function, path


class _Resolver:
    """Builds one config: samples domains in order, then resolves sample_from lazily."""

    def __init__(self, rng: np.random.Generator, fixed: Mapping[Path, Any]) -> None:
        self.rng, self.fixed = rng, fixed
        self.pending: list[tuple[Any, Any, _Pending]] = []  # (container, key, pending)
        self.resolving: list[Path] = []

    def build(self, space: Mapping[str, Any]) -> dict[str, Any]:
        self.root = self._walk(space, ())
        for container, key, pending in self.pending:
            if isinstance(container[key], _Pending):
                container[key] = self._resolve(pending)
        return self.root

    def _walk(self, node: Any, path: Path) -> Any:
        if node.__class__ in _PLAIN_DOMAINS:  # the usual case first: a float, int or randn
            return self.fixed[path] if path in self.fixed else node.sample(self.rng)
        if isinstance(node, Grid):
            if path not in self.fixed:
                raise SearchSpaceError(f"{format_path(path)}: grid_search value not given; use Space.grid_points()")
            value = self.fixed[path]
            if value.__class__ in _IMMUTABLE:
                return value
            if _contains_domain(value):  # grid_search([{"a": uniform(0, 1)}, ...]): drawn, as in Ray
                index = next((i for i, v in enumerate(node.values) if v is value), len(node.values))
                return self._walk(value, path + (Branch(index),))
            return copy.deepcopy(value)  # trials must not share (and mutate) one list or dict
        if isinstance(node, Categorical):
            index = self.fixed[path] if path in self.fixed else node.sample_index(self.rng)
            category = node.categories[index]
            if category.__class__ in _IMMUTABLE:
                return category
            if _contains_domain(category):
                return self._walk(category, path + (Branch(index),))
            return copy.deepcopy(category)  # trials must not share (and mutate) one list or dict
        if isinstance(node, Function):
            return _Pending(node, path)
        if isinstance(node, Domain):
            return self.fixed[path] if path in self.fixed else node.sample(self.rng)
        if isinstance(node, Mapping):
            out = {}
            for key, value in node.items():
                out[key] = self._walk(value, path + (key,))
                if isinstance(out[key], _Pending):
                    self.pending.append((out, key, out[key]))
            return out
        if isinstance(node, (list, tuple)):
            out_list = []
            for index, value in enumerate(node):
                out_list.append(self._walk(value, path + (index,)))
                if isinstance(out_list[-1], _Pending):
                    self.pending.append((out_list, index, out_list[-1]))
            return out_list  # tuples become lists, as they would through JSON
        return node

    def _resolve(self, pending: _Pending) -> Any:
        if pending.path in self.resolving:
            cycle = " -> ".join(format_path(p) for p in self.resolving + [pending.path])
            raise SearchSpaceError(f"sample_from cycle: {cycle}")
        if pending.path in self.fixed:
            return self.fixed[pending.path]
        self.resolving.append(pending.path)
        try:
            value = pending.function.fn(_ConfigView(self.root, self))
        except SearchSpaceError:
            raise
        except Exception as exc:
            raise SearchSpaceError(
                f"{format_path(pending.path)}: sample_from function raised {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self.resolving.pop()
        if isinstance(value, Grid):
            raise SearchSpaceError(f"{format_path(pending.path)}: sample_from returned {value!r}; a grid_search must "
                                   "be written in the config itself, where the trials are counted")
        if isinstance(value, Domain):  # sample_from may return a domain to draw from
            value = self._walk(value, pending.path)
            if isinstance(value, _Pending):
                value = self._resolve(value)
        return _detached(value)


class _ConfigView(Mapping):
    """Read-only view of the config being built; reading an unresolved value resolves it.

    Supports config["a"]["b"], config.a.b, and Ray Tune's spec.config.a for ported code.
    """

    def __init__(self, node: Any, resolver: _Resolver) -> None:
        self._node, self._resolver = node, resolver

    def __getitem__(self, key: Any) -> Any:
        if key == "config" and self._node is self._resolver.root and "config" not in self._node:
            return self  # Ray's spec["config"]["lr"], as spec.config.lr below
        value = self._node[key]
        if isinstance(value, _Pending):
            value = self._resolver._resolve(value)
            self._node[key] = value
        if isinstance(value, (dict, list)):
            return _ConfigView(value, self._resolver)
        return value

    def __getattr__(self, key: str) -> Any:
        if key == "config":
            return self
        try:
            return self[key]
        except (KeyError, IndexError, TypeError):
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._node) if isinstance(self._node, dict) else iter(range(len(self._node)))

    def __len__(self) -> int:
        return len(self._node)


def _detached(value: Any) -> Any:
    """What a sample_from function returned, as plain data: a part of the config it returned
    (`lambda config: config["model"]`) is copied out of the view it read it through."""
    if isinstance(value, _ConfigView):
        return {k: _detached(value[k]) for k in value} if isinstance(value._node, dict) \
            else [_detached(value[i]) for i in range(len(value))]
    if type(value) in (list, tuple):
        return type(value)(_detached(v) for v in value)
    if type(value) is dict:
        return {k: _detached(v) for k, v in value.items()}
    return _native(value)


def _native(value: Any) -> Any:
    """numpy scalars become Python numbers, so configs serialise to JSON as users expect."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def resolved_items(config: Mapping[str, Any], space: Space) -> dict[str, Any]:
    """The sampled hyperparameters of a config (not its constants), flat, for tables and logs."""
    out: dict[str, Any] = {}
    paths = [p.path for p in space.parameters] + [p for p, _ in space.grid]
    for path in paths:
        node: Any = config
        keys = [k for k in path if not isinstance(k, Branch)]
        try:
            for key in keys:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            continue  # a conditional parameter whose branch was not chosen
        if isinstance(node, (dict, list)):
            continue  # a choice of structures: its leaves are listed on their own
        out["/".join(str(k) for k in keys)] = node
    return out
