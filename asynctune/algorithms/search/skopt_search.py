"""Sequential model-based optimisation with scikit-optimize's `Optimizer` (ask / tell).

A surrogate model of the loss (a Gaussian process, or a random forest, extra trees or gradient
boosted trees with quantile estimates) is fitted to the finished trials, and the next config
maximises an acquisition function over it (Snoek, Larochelle and Adams, 2012; Hutter, Hoos and
Leyton-Brown, 2011, for forests). While other trials are still running, their configs are told
to the model with a made-up loss, the "constant liar" of Ginsbourger, Le Riche and Carraro
(2010), so parallel suggestions do not all land on the same point.

The Optimizer is rebuilt from the observations at each suggestion (one fit, the same cost as
an incremental `tell`), so its state is just the observations: a NaN loss can be replaced by
the worst finite one, lies are never left behind, and save/restore is exact. The one thing
carried from one suggestion to the next is gp_hedge's bookkeeping (the gains of EI, PI and LCB
and the candidate each proposed last time), so the hedge learns as in gp_minimize.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...core.space import Categorical, Float, Integer, Parameter
from .model_based import ModelBasedSearcher, Observation, Values, is_active

_ESTIMATORS = ("GP", "RF", "ET", "GBRT")
_ACQ_FUNCS = ("gp_hedge", "EI", "PI", "LCB")
_LIARS = {"cl_min": np.min, "cl_mean": np.mean, "cl_max": np.max}


class SkOptSearch(ModelBasedSearcher):
    """Bayesian optimisation through scikit-optimize's Optimizer.

    The search space maps onto skopt dimensions: log domains get a log-uniform prior, integers
    stay integers, `choice` becomes a categorical over the category indices. Parameters inside
    a `choice` of dicts are modelled always (at their midpoint when their branch is not taken)
    and used only when their branch is chosen. `randn` (unbounded) is not supported.

    Example:
        >>> run(train, config={"lr": loguniform(1e-4, 1e-1), "width": randint(16, 257)},
        ...     num_samples=40, search_alg=SkOptSearch(metric="loss", mode="min", seed=0))

    Args:
        metric: The result key to optimise; run()'s metric is used when None.
        mode: "min" or "max"; run()'s mode is used when None.
        base_estimator: The surrogate: "GP" (Gaussian process, best on smooth low-dimensional
            problems), "RF" (random forest), "ET" (extra trees) or "GBRT" (gradient boosted
            trees), or any scikit-learn regressor skopt accepts.
        acq_func: "gp_hedge" (the default, as in gp_minimize: a pick among EI, PI and LCB that
            favours the one whose past candidates the model now predicts best), "EI" (expected
            improvement), "PI" or "LCB" (lower confidence bound).
        n_initial_points: Random trials before the surrogate is used (10, as gp_minimize).
        acq_optimizer: "auto", "lbfgs" (GP only) or "sampling".
        acq_func_kwargs: Passed to skopt (e.g. {"xi": 0.01} for EI, {"kappa": 1.96} for LCB).
        acq_optimizer_kwargs: Passed to skopt (e.g. {"n_points": 10000, "n_restarts_optimizer": 5}).
        liar_strategy: The loss told for running trials: "cl_min" (the best loss so far,
            spreads suggestions most), "cl_mean" or "cl_max".
        points_to_evaluate: Configs (possibly partial) to try first.
        seed: Seeds every random choice: the same results give the same suggestions.
    """

    slow = True  # fitting a GP to hundreds of points takes seconds: the controller uses a thread
    supported_domains = (Float, Integer, Categorical)

    def __init__(self, metric: str | None = None, mode: str | None = None, *,
                 base_estimator: str | Any = "GP", acq_func: str = "gp_hedge", n_initial_points: int = 10,
                 acq_optimizer: str = "auto", acq_func_kwargs: Mapping[str, Any] | None = None,
                 acq_optimizer_kwargs: Mapping[str, Any] | None = None, liar_strategy: str = "cl_min",
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 seed: int | None = None) -> None:
        if isinstance(base_estimator, str) and base_estimator.upper() not in _ESTIMATORS:
            raise ValueError(f"base_estimator must be one of {_ESTIMATORS} or a regressor, got {base_estimator=}")
        if acq_func not in _ACQ_FUNCS:
            raise ValueError(f"acq_func must be one of {_ACQ_FUNCS}, got {acq_func=}")
        if acq_optimizer not in ("auto", "lbfgs", "sampling"):
            raise ValueError(f"acq_optimizer must be 'auto', 'lbfgs' or 'sampling', got {acq_optimizer=}")
        if acq_optimizer == "lbfgs" and not (isinstance(base_estimator, str) and base_estimator.upper() == "GP"):
            raise ValueError(f"acq_optimizer='lbfgs' needs base_estimator='GP', got {base_estimator=}")
        if liar_strategy not in _LIARS:
            raise ValueError(f"liar_strategy must be one of {tuple(_LIARS)}, got {liar_strategy=}")
        if isinstance(n_initial_points, bool) or not isinstance(n_initial_points, int) or n_initial_points < 0:
            raise ValueError(f"n_initial_points must be an integer >= 0, got {n_initial_points=}")
        try:
            import skopt  # noqa: F401
        except ImportError as exc:
            raise ImportError("SkOptSearch needs scikit-optimize: pip install 'asynctune[skopt]'") from exc
        super().__init__(metric, mode, points_to_evaluate=points_to_evaluate,
                         n_startup=n_initial_points, seed=seed)
        self.base_estimator = base_estimator.upper() if isinstance(base_estimator, str) else base_estimator
        self.acq_func = acq_func
        self.acq_optimizer = acq_optimizer
        self.acq_func_kwargs = dict(acq_func_kwargs or {})
        self.acq_optimizer_kwargs = dict(acq_optimizer_kwargs or {})
        self.liar_strategy = liar_strategy
        # gp_hedge's state between suggestions: the gains of EI, PI, LCB and their last candidates.
        self._hedge_gains: np.ndarray | None = None
        self._hedge_candidates: list[np.ndarray] | None = None

    def _propose(self, observations: list[Observation], pending: list[Values],
                 rng: np.random.Generator) -> Values | None:
        from skopt import Optimizer

        params = [p for p in self._searchable() if _size(p) > 1]  # constants need no model
        losses = np.array([loss for _, loss in observations], dtype=float)
        finite = losses[np.isfinite(losses)]
        if not params or len(finite) == 0:
            return None  # nothing to model: the prior decides
        # The surrogate cannot fit inf: failed configs get the worst loss seen.
        losses = np.where(np.isfinite(losses), losses, finite.max())
        xs = [_to_point(params, values) for values, _ in observations]
        ys = losses.tolist()
        if pending:
            lie = float(_LIARS[self.liar_strategy](finite))
            xs += [_to_point(params, values) for values in pending]
            ys += [lie] * len(pending)
        seed = int(rng.integers(2**31 - 1))
        estimator = _gbrt(seed) if self.base_estimator == "GBRT" else self.base_estimator
        optimizer = Optimizer(
            [_dimension(p) for p in params], base_estimator=estimator, n_initial_points=0,
            acq_func=self.acq_func, acq_optimizer=self.acq_optimizer,
            acq_func_kwargs=self.acq_func_kwargs or None, acq_optimizer_kwargs=self.acq_optimizer_kwargs or None,
            random_state=seed)
        hedge = self.acq_func == "gp_hedge"
        if hedge:
            with self._lock:
                gains, candidates = self._hedge_gains, self._hedge_candidates
            width = optimizer.space.transformed_n_dims
            if gains is not None and candidates and all(c.shape == (width,) for c in candidates):
                # tell() charges each function's last candidate with the new model's prediction there
                optimizer.gains_ = np.array(gains, dtype=float)
                optimizer.next_xs_ = [np.array(c) for c in candidates]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "objective evaluated at this point before" and fit noise
            optimizer.tell(xs, ys)
            point = optimizer.ask()
        if hedge and hasattr(optimizer, "next_xs_"):
            with self._lock:
                self._hedge_gains = np.array(optimizer.gains_, dtype=float)
                self._hedge_candidates = [np.asarray(c, dtype=float) for c in optimizer.next_xs_]
        return _from_point(params, point)


def _gbrt(seed: int) -> Any:
    """skopt's "GBRT" surrogate (gradient boosting at the 16%, 50% and 84% quantiles)."""
    from sklearn.ensemble import GradientBoostingRegressor

    return _gbrt_class()(base_estimator=GradientBoostingRegressor(n_estimators=30, loss="quantile"),
                         random_state=seed)


@functools.cache
def _gbrt_class() -> type:
    """skopt 0.10's quantile regressor, mended for current scikit-learn and numpy.

    It lists RegressorMixin after BaseEstimator, so scikit-learn >= 1.6 does not tag it as a
    regressor and the Optimizer refuses it; and its predict(return_std=True) calls np.in1d,
    which numpy 2.4 removed. The prediction is the same: the median, and half the spread
    between the 16% and 84% quantiles as the standard deviation.
    """
    from skopt.learning import GradientBoostingQuantileRegressor

    class QuantileRegressor(GradientBoostingQuantileRegressor):
        def __sklearn_tags__(self) -> Any:
            tags = super().__sklearn_tags__()
            tags.estimator_type = "regressor"
            return tags

        def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
            quantiles = np.asarray([regressor.predict(X) for regressor in self.regressors_])
            if return_quantiles:
                return quantiles.T
            low, median, high = (quantiles[self.quantiles.index(q)] for q in (0.16, 0.5, 0.84))
            return (median, (high - low) / 2.0) if return_std else median

    return QuantileRegressor


def _size(param: Parameter) -> float:
    domain = param.domain
    if isinstance(domain, Categorical):
        return len(domain.categories)
    if isinstance(domain, Integer):
        return (domain.high - domain.low) // domain.q + 1
    return math.inf


def _dimension(param: Parameter) -> Any:
    from skopt.space import Categorical as SkCategorical, Integer as SkInteger, Real

    domain, name = param.domain, param.name
    if isinstance(domain, Categorical):
        return SkCategorical(list(range(len(domain.categories))), name=name)
    if isinstance(domain, Integer):
        if domain.q == 1:
            return SkInteger(domain.low, domain.high, prior="log-uniform" if domain.log else "uniform", name=name)
        return SkInteger(0, (domain.high - domain.low) // domain.q, name=name)  # the index of the multiple
    assert isinstance(domain, Float)
    if domain.log:
        return Real(domain.low, domain.high, prior="log-uniform", base=domain.base, name=name)
    return Real(domain.low, domain.high, name=name)


def _to_point(params: Sequence[Parameter], values: Values) -> list[Any]:
    """A skopt point; a parameter its trial did not have sits at a fixed neutral value."""
    point: list[Any] = []
    for param in params:
        domain = param.domain
        value = values.get(param.path)
        if value is None:
            value = _neutral(param)
        elif isinstance(domain, Integer) and domain.q != 1:
            value = (value - domain.low) // domain.q
        point.append(int(value) if isinstance(domain, (Integer, Categorical)) else float(value))
    return point


def _neutral(param: Parameter) -> Any:
    domain = param.domain
    if isinstance(domain, Categorical):
        return 0
    if isinstance(domain, Integer):
        return domain.low if domain.q == 1 else 0
    if domain.log:
        return math.sqrt(domain.low * domain.high)
    return (domain.low + domain.high) / 2


def _from_point(params: Sequence[Parameter], point: Sequence[Any]) -> Values:
    values: Values = {}
    for param, value in zip(params, point):
        if not is_active(param, values):
            continue  # its branch was not chosen: the model's value for it means nothing
        domain = param.domain
        if isinstance(domain, Categorical):
            values[param.path] = int(value)
        elif isinstance(domain, Integer):
            values[param.path] = int(value) if domain.q == 1 else domain.low + int(value) * domain.q
        else:
            values[param.path] = domain.quantize(min(max(float(value), domain.low), domain.high))
    return values
