"""Multi-objective asynchronous successive halving, MO-ASHA (Schmucker et al., "Multi-objective
Asynchronous Successive Halving", 2021): ASHA whose rungs rank trials by non-dominated sorting."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ...core.pareto import in_top, nondominated_rank
from ...core.trial import Trial
from .rungs import score
from .asha import ASHAScheduler, _Rung, _top_size
from ..base import objective_pairs


class MOASHAScheduler(ASHAScheduler):
    """ASHA for several metrics: at each rung, keep the top 1/eta by non-dominated sorting.

    Schmucker et al. (2021) keep ASHA's rungs, brackets and asynchrony and change only how a
    rung ranks its trials: by their vector of objectives at the rung's milestone, sorted into
    Pareto fronts (the non-dominated trials first, then those dominated only by them, ...).
    Where the top 1/eta cuts through a front, the paper's epsilon-net breaks the tie: the
    trial best in the first metric comes first, then each time the trial farthest from those
    already ranked (objectives scaled to [0, 1] over the rung), so the kept part of the front
    is spread along it rather than bunched at one end. A dominated trial is therefore never
    kept over a trial that dominates it.

    * `variant="stopping"` (as Syne Tune's MOASHA): a trial reaching a rung continues if it
      ranks in the top ceil(n/eta) of the n trials recorded there (itself included), else stops.
    * `variant="promotion"` (the paper's): a trial reaching a rung pauses; a free worker
      resumes the best-ranked paused trial among the top floor(n/eta) of its rung (highest
      rung first), else starts a new trial.

    A result that lacks one of the metrics is not judged; NaN or inf is the worst value.

    Example:
        >>> run(train, config=space, metric=["error", "latency"], mode=["min", "min"],
        ...     scheduler=MOASHAScheduler(max_t=81, grace_period=1, reduction_factor=3))

    Args:
        metric: The metrics to optimise (a list); run()'s metrics when None.
        mode: "min" or "max" for each metric (or one for all); run()'s modes when None.
        time_attr, max_t, grace_period, reduction_factor, brackets, variant, seed: as for
            `ASHAScheduler` (reduction_factor is eta: keep the top 1/eta at each rung).
    """

    multi_objective = True

    def _score(self, result: dict[str, Any]) -> tuple[float, ...] | None:
        """The objectives as scores (higher is better); None while one is missing."""
        pairs = objective_pairs(self.metric, self.mode)
        if any(m not in result for m, _ in pairs):
            return None
        return tuple(score(result[m], mode) for m, mode in pairs)

    def _in_top(self, rung: _Rung, value: tuple[float, ...]) -> bool:
        newcomer = len(rung.recorded)
        top = math.ceil((newcomer + 1) / self.reduction_factor)
        return in_top(_costs(list(rung.recorded.values()) + [value]), newcomer, top)

    def _promotable(self, rung: _Rung, eligible: Callable[[Trial], bool], at_least_one: bool = False) -> Trial | None:
        """The best-ranked eligible waiting trial among the rung's top floor(n/eta), if any."""
        trial_ids = list(rung.recorded)
        top = _top_size(len(trial_ids), self.reduction_factor, at_least_one)
        for index in nondominated_rank(_costs(list(rung.recorded.values())), top):
            trial = rung.candidate(trial_ids[index])
            if trial is not None and eligible(trial):
                return trial
        return None


def _costs(scores: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """Scores (higher is better) as the costs the Pareto functions rank (lower is better)."""
    return [tuple(-s for s in point) for point in scores]
