"""BOHB: Bayesian optimisation and HyperBand (Falkner et al., 2018).

HyperBand decides how long each trial trains; TPE decides which configs to try. The model is
fitted on the observations of the largest budget that already holds enough of them, since
results at larger budgets predict the final outcome best, and a fraction of configs is drawn
at random so the model cannot lock onto a region early.

    >>> run(train, config=space, num_samples=100, metric="loss", mode="min",
    ...     search_alg=BOHBSearch(seed=0),
    ...     scheduler=HyperBandScheduler(max_t=81, reduction_factor=3))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .model_based import Observation, Values
from .tpe import TPESearch, _gamma_function, propose


class BOHBSearch(TPESearch):
    """TPE over HyperBand budgets (BOHB). Pair it with `HyperBandScheduler` (or ASHA).

    Every result a trial reports at budget b (its `time_attr`, e.g. the epoch) is kept as an
    observation of its config at b. A suggestion fits TPE's l(x)/g(x) to the observations at
    the largest budget that has at least `min_points_in_model` of them, exactly as
    `TPESearch` does with final results; with no such budget, or with probability
    `random_fraction`, the config is drawn from the prior.

    Args:
        time_attr: The result key that measures the budget (the scheduler's time_attr).
        min_points_in_model: Observations a budget needs before the model uses it (the
            paper's N_min; default: the number of hyperparameters + 1).
        random_fraction: Share of suggestions drawn at random (the paper's rho, 1/3).
        Other arguments are TPESearch's (gamma is the paper's q, n_ei_candidates its N_s).
    """

    def __init__(self, metric: str | None = None, mode: str | None = None, *,
                 time_attr: str = "training_iteration", min_points_in_model: int | None = None,
                 random_fraction: float = 1 / 3, points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 n_ei_candidates: int = 24, gamma: float | Callable[[int], int] | None = None,
                 prior_weight: float = 1.0, multivariate: bool = True, seed: int | None = None) -> None:
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"BOHBSearch: time_attr must be a result key, got {time_attr=}")
        if min_points_in_model is not None and (
                isinstance(min_points_in_model, bool) or not isinstance(min_points_in_model, int)
                or min_points_in_model < 1):
            raise ValueError(f"BOHBSearch: min_points_in_model must be an integer >= 1, got {min_points_in_model=}")
        if isinstance(random_fraction, bool) or not isinstance(random_fraction, (int, float)) \
                or not 0 <= random_fraction <= 1:
            raise ValueError(f"BOHBSearch: random_fraction must be in [0, 1], got {random_fraction=}")
        # No startup phase of its own: the per-budget threshold plays that part.
        super().__init__(metric, mode, points_to_evaluate=points_to_evaluate, n_startup_trials=0,
                         n_ei_candidates=n_ei_candidates, gamma=gamma, prior_weight=prior_weight,
                         multivariate=multivariate, seed=seed)
        self.time_attr = time_attr
        self.min_points_in_model = min_points_in_model
        self.random_fraction = float(random_fraction)
        self.budget_observations: dict[float, dict[str, Observation]] = {}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        super().on_trial_result(trial_id, result)
        self._observe(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        if result is not None and not error:
            self._observe(trial_id, result)
        super().on_trial_complete(trial_id, result, error)

    def _observe(self, trial_id: str, result: Mapping[str, Any]) -> None:
        budget = result.get(self.time_attr)
        loss = self._loss(result)
        if budget is None or loss is None:
            return
        with self._lock:
            values = self._live.get(trial_id)
            if values is not None:
                # One observation per trial and budget: a restarted trial's repeat replaces it.
                self.budget_observations.setdefault(float(budget), {})[trial_id] = (values, loss)

    def _propose(self, observations: list[Observation], pending: list[Values],
                 rng: np.random.Generator) -> Values | None:
        if rng.random() < self.random_fraction:
            return None  # from the prior
        with self._lock:
            budget = _largest_budget_with(self.budget_observations, self._min_points())
            chosen = list(self.budget_observations[budget].values()) if budget is not None else []
        if not chosen:
            return None
        return propose(self._searchable(), chosen, rng, gamma=_gamma_function(self.gamma),
                       n_candidates=self.n_ei_candidates, prior_weight=self.prior_weight,
                       multivariate=self.multivariate)

    def _min_points(self) -> int:
        return self.min_points_in_model or len(self._searchable()) + 1


def _largest_budget_with(by_budget: Mapping[float, Mapping[str, Observation]], minimum: int) -> float | None:
    ready = [budget for budget, observed in by_budget.items() if len(observed) >= minimum]
    return max(ready) if ready else None


__all__ = ["BOHBSearch"]
