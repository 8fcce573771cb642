"""Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio and Kégl, NeurIPS 2011).

TPE models p(x | y) instead of p(y | x). The finished trials are split at the gamma-quantile of
their loss into a good set and a bad set; a Parzen estimator (a mixture with one kernel per
observation, plus a kernel for the prior) is fitted to each, l(x) to the good and g(x) to the
bad. Expected improvement is monotone in l(x) / g(x), so the algorithm draws n_ei_candidates
from l and keeps the one with the largest ratio. Here the good observations weigh 1/sqrt(rank)
in l (the best weighs most), which refines the best region faster than equal weights.

The estimators here follow the domain of each parameter: a truncated Gaussian kernel on
[low, high] for floats (in log space for log domains), the probability of the rounding bin for
quantized floats and integers, an untruncated one for `randn`, and a smoothed histogram for a
`choice`. Univariate TPE (the paper's) picks each parameter on its own; multivariate TPE
(Falkner et al., 2018) uses one product kernel per observation for all parameters that exist
together. A parameter inside a `choice` of dicts is fitted only on the trials that chose its
branch (split into good and bad among themselves), and is proposed only when its branch is
chosen: the "tree" of the name.

Categories get a model of their own where the joint one knows little. The startup trials are a
space-filling design that takes every category in turn (space_filling.py). A category that has
had fewer than its share of trials is proposed for exploration, and the rest of its group (the
other categories too) comes from a model of that category's trials alone. When the model's own
pick is a combination of categories that already has several trials, its numeric parameters
are refined by a model of that combination's trials alone: a good learning rate for one
optimizer says little about another's. The choices of a group share the exploration schedule,
and a combination with too few trials is refined on the trials that share most of its choices.
In a group of several choices the categories are picked by their own l(c) / g(c) before the
numbers, so that numbers which happen to score well do not scatter the proposals over
combinations; the joint model's pick one choice away still gets a trial or two. For as many
trials after the start as the start has, a group's choices are picked one by one (the joint
model knows only the combinations it has seen), its numbers jointly.

The model is in plain functions over (values, loss) observations, so algorithms that keep
several sets of observations (BOHB: one per budget) can reuse it: `split_observations`,
`ParzenEstimator`, `propose`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ...core.space import Categorical, Parameter, Path
from .model_based import ModelBasedSearcher, Observation, Values, complete_from_prior, is_active
from .scale import Scale
from .space_filling import latin_hypercube

# A combination of categories (a "cell") with at least this many trials gets its numeric
# parameters from a model of its own trials (benchmarks/search_quality, tuning half, 20 seeds:
# docs/searchers.md says what else was tried).
CELL_MIN_TRIALS = 5

# With categories first, a combination one choice away from the greedy one that the joint model
# prefers is proposed while it has fewer trials than this (docs/searchers.md, "Categories first").
NEIGHBOUR_TRIALS = 2


def default_gamma(n: int) -> int:
    """How many of n observations are "good": the best 20%, at most 25.

    Optuna keeps the best 10%; 20% found better optima on Branin and Hartmann6 at 50 and
    100 evaluations (benchmarks/search_quality) because l(x) then rests on more points.
    """
    return min(math.ceil(0.2 * n), 25)


class TPESearch(ModelBasedSearcher):
    """Tree-structured Parzen Estimator search (Bergstra et al., 2011).

    After `n_startup_trials` random configs, each suggestion fits l(x) to the best gamma
    fraction of the finished trials and g(x) to the rest, draws `n_ei_candidates` from l and
    returns the one that maximises l(x) / g(x) (the expected improvement).

    The defaults were chosen by median simple regret at 25, 50 and 100 evaluations, on the
    tuning half of benchmarks/search_quality (11 functions, 20-60 seeds; the start, the branch
    split and the category models) and before that on five functions and 80 seeds (weights,
    candidates, gamma); docs/searchers.md lists what was tried.

    Example:
        >>> run(train, config={"lr": loguniform(1e-4, 1e-1), "layers": randint(1, 5)},
        ...     num_samples=100, search_alg=TPESearch(metric="loss", mode="min", seed=0))

    Args:
        metric: The result key to optimise; run()'s metric is used when None.
        mode: "min" or "max"; run()'s mode is used when None.
        points_to_evaluate: Configs (possibly partial) to try first, e.g. known good defaults;
            the parameters they leave out are drawn at random.
        n_startup_trials: Trials before the model is used: a space-filling design, or random.
        n_ei_candidates: Candidates drawn from l(x) per suggestion; more exploits harder.
        gamma: The good fraction (a float in (0, 1): the best ceil(gamma * n) of n), or a
            function n -> number of good observations. Default: 20% of n, at most 25.
        prior_weight: Weight of the prior kernel against the best observation's kernel;
            larger keeps exploring.
        rank_weights: Weigh the good observations' kernels in l(x) by 1/sqrt(rank), the best
            first; False weighs them equally, as in the paper.
        multivariate: Model the parameters that exist together jointly (one product kernel
            per observation), as Optuna does by default; False picks each parameter on its own
            as in the paper. Joint is much better when parameters interact (Hartmann6 regret
            at 100 evaluations, median of 10 seeds: 0.08 against 0.36).
        constant_liar: Count the trials still running as bad observations (in g(x), not in
            the number of good ones), as Optuna's TPE does, so that trials suggested while
            others run spread out instead of piling onto one mode. This holds for every model
            fitted to a subset of the trials too (a branch, a category, a combination): a
            running trial is a bad one where it belongs and nothing where it does not, and
            never counts as a finished trial of the subset. False ignores running
            trials, and then often proposes again next to a config in flight
            (docs/searchers.md, "Parallel trials").
        category_exploration: c: of the n trials that made a `choice`, each category gets
            at least c * sqrt(n / m), where m choices are modelled together (never more than
            an even share, n / categories). When a
            category has fewer, it is proposed instead of the model's pick, with the rest of
            its group (other categories included) fitted to that category's trials only, with
            equal weights and a quarter of the candidates (the model knows little there). Without it, a category that
            looks best after the random trials takes nearly every later sample, even when
            another one holds the optimum (benchmarks/search_quality, mixed_trap). 0 turns
            it off.
        category_smoothing: Each observation's kernel over a `choice` of k categories puts 1 on
            its own category and category_smoothing * prior_weight / k on every category, so
            the model also proposes combinations it has not seen together.
        categories_first: Where a group of parameters holds two or more `choice`s beside
            numeric parameters, pick its categories by their own l(c) / g(c) among the
            candidates (then the numbers by the whole ratio), except that the joint model's
            pick gets a trial or two where it differs in one choice only; False picks the
            candidate with the best whole ratio. Numbers that happen to score well otherwise
            scatter the proposals over combinations (benchmarks/search_quality, mixed_flags).
            Not in a group with a choice that selects branches, and no effect with
            multivariate=False (each group is one parameter).
        early_choices_alone: For as many trials after the start as the start has
            (n_startup_trials), pick each `choice` of a group of several on its own, by its
            own l / g and exploration schedule, and the group's numbers jointly; then the
            whole group jointly. With a trial or two per combination the joint model proposes
            little but the combinations it has seen, while the choices taken apart recombine
            what each has shown (benchmarks/search_quality, mixed_flags and mixed_interact).
        space_filling: The startup trials form a Latin hypercube over the numeric parameters
            (one point per slice of each range, the design whose closest points are farthest
            apart) and take every category in turn; False draws them from the prior.
        seed: Seeds every random choice: the same results give the same suggestions.
    """

    # A searcher pickled before these options existed (a resumed experiment's) goes on as it began.
    categories_first: bool = False
    early_choices_alone: bool = False

    def __init__(self, metric: str | None = None, mode: str | None = None, *,
                 points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 n_startup_trials: int = 8, n_ei_candidates: int = 48,
                 gamma: float | Callable[[int], int] | None = None, prior_weight: float = 1.0,
                 rank_weights: bool = True, multivariate: bool = True, constant_liar: bool = True,
                 category_exploration: float = 1.5, category_smoothing: float = 2.0,
                 categories_first: bool = True, early_choices_alone: bool = True, space_filling: bool = True,
                 seed: int | None = None) -> None:
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int) or n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be an integer >= 0, got {n_startup_trials=}")
        if isinstance(n_ei_candidates, bool) or not isinstance(n_ei_candidates, int) or n_ei_candidates < 1:
            raise ValueError(f"n_ei_candidates must be an integer >= 1, got {n_ei_candidates=}")
        if gamma is not None and not callable(gamma) and (
                isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1):
            raise ValueError(f"gamma must be a float in (0, 1) or a function n -> int, got {gamma=}")
        if isinstance(prior_weight, bool) or not isinstance(prior_weight, (int, float)) or not prior_weight > 0:
            raise ValueError(f"prior_weight must be a number > 0, got {prior_weight=}")
        if isinstance(category_exploration, bool) or not isinstance(category_exploration, (int, float)) \
                or not 0 <= category_exploration < math.inf:
            raise ValueError(f"category_exploration must be a number >= 0, got {category_exploration=}")
        if isinstance(category_smoothing, bool) or not isinstance(category_smoothing, (int, float)) \
                or not 0 < category_smoothing < math.inf:
            raise ValueError(f"category_smoothing must be a number > 0, got {category_smoothing=}")
        super().__init__(metric, mode, points_to_evaluate=points_to_evaluate,
                         n_startup=n_startup_trials, seed=seed)
        self.n_ei_candidates = n_ei_candidates
        self.gamma = gamma
        self.prior_weight = float(prior_weight)
        self.rank_weights = bool(rank_weights)
        self.multivariate = bool(multivariate)
        self.constant_liar = bool(constant_liar)
        self.category_exploration = float(category_exploration)
        self.category_smoothing = float(category_smoothing)
        self.categories_first = bool(categories_first)
        self.early_choices_alone = bool(early_choices_alone)
        self.space_filling = bool(space_filling)
        self._design: list[Values] | None = None  # the startup design, made at the first startup trial
        self._design_used = 0

    def _startup(self, params: list[Parameter], rng: np.random.Generator) -> Values:
        if not self.space_filling:
            return super()._startup(params, rng)
        if self._design is None:
            self._design = latin_hypercube(params, self.n_startup, rng)
        # Trials that fail do not count towards the start, so it may ask for more than planned.
        point = self._design[self._design_used] if self._design_used < len(self._design) else {}
        self._design_used += 1
        return complete_from_prior(params, point, rng)

    def _propose(self, observations: list[Observation], pending: list[Values],
                 rng: np.random.Generator) -> Values:
        return propose(self._searchable(), observations, rng, gamma=_gamma_function(self.gamma),
                       n_candidates=self.n_ei_candidates, prior_weight=self.prior_weight,
                       rank_weights=self.rank_weights, multivariate=self.multivariate,
                       category_exploration=self.category_exploration,
                       category_smoothing=self.category_smoothing, branch_split=True,
                       cell_min_trials=CELL_MIN_TRIALS, categories_first=self.categories_first,
                       choices_alone_until=2 * self.n_startup if self.early_choices_alone else 0,
                       running=pending if self.constant_liar else ())


def _gamma_function(gamma: float | Callable[[int], int] | None) -> Callable[[int], int]:
    if gamma is None:
        return default_gamma
    if callable(gamma):
        return gamma
    return lambda n: math.ceil(gamma * n)


# --- the algorithm ------------------------------------------------------------------------------

def propose(params: Sequence[Parameter], observations: Sequence[Observation], rng: np.random.Generator, *,
            gamma: Callable[[int], int] = default_gamma, n_candidates: int = 24,
            prior_weight: float = 1.0, rank_weights: bool = False, multivariate: bool = True,
            category_exploration: float = 0.0, category_smoothing: float = 1.0, branch_split: bool = False,
            cell_min_trials: int | None = None, categories_first: bool = False, choices_alone_until: int = 0,
            running: Sequence[Values] = ()) -> Values:
    """The values that maximise l(x) / g(x) among `n_candidates` draws from l, group by group.

    A group is one parameter (univariate) or all parameters that exist under the same branch
    (multivariate). Groups are visited parents first, so a branch's parameters are proposed
    only when the proposed choice selects that branch.

    `rank_weights`: the good observations weigh 1/sqrt(rank) in l, the best first.

    `branch_split`: a branch's parameters are fitted to the observations that took the branch,
    split into good and bad among themselves. (By the split of all observations, a branch that
    is worse than another has no good observations, and its l is the prior.)

    `category_exploration` c: of the n observations that made a `choice`, each category is to
    have at least min(c * sqrt(n / m), n / categories), where the group has m choices (they
    share the schedule). When the model's pick lacks one, an
    under-explored category replaces it, and the rest of the group (other categories too) is
    fitted only to the observations that made that choice, with equal weights and a quarter
    of the candidates: the model's view of it comes from the category it prefers, which says
    little about another (the category that looked best early may not hold the optimum), and
    within a category it has seldom tried it should look widely.

    `cell_min_trials` m: otherwise, when the categories picked together have at least m
    observations, the group's numeric parameters are refitted to those observations alone; when
    they have fewer, to the most observations that agree on the most of the picked categories
    and number at least m (none: the joint model's pick stays).

    `categories_first`: in a group of two or more choices beside numeric parameters, the
    categories are picked by their own l / g (`_categories_first`), not by the whole candidate's.
    Not for an explored category's group (there the model knows little, and looks widely), nor
    for a group with a choice that selects branches (a branch may be good only where its own
    numbers are, which the group's ratio does not see: the conditional spaces pick as before).

    `choices_alone_until` n: while fewer than n trials have finished, the choices of a group of
    several are groups of their own (each picked by its own l / g, with its own exploration
    schedule), proposed before the group's numbers, which stay joint.

    `running`: the configs of trials still running (the constant liar, as Optuna's TPE with
    `constant_liar=True`). Each joins the bad observations of every model fitted to trials it
    shares (the group's, its branch's, an explored category's, a combination's), so l(x) / g(x)
    points away from it; it is never counted as a trial of those models: each one's number of
    good observations comes from its finished trials alone, and a combination needs m finished
    ones. The exploration schedule does count it as made, so that asks in a row do not all
    explore the same category, and so does categories first's count of a neighbour's trials.
    """
    good, bad = _split(observations, running, gamma)
    selectors = {p.condition[0] for p in params if p.condition is not None}  # choices that select branches
    made = [*observations, *((v, math.inf) for v in running)]  # for the exploration schedule
    values: Values = {}
    groups = parameter_groups(params, multivariate)
    if len(observations) < choices_alone_until:
        groups = [part for group in groups for part in _choices_apart(group)]
    for group in groups:
        if not is_active(group[0], values):
            continue
        path = group[0].path
        group_good, group_bad = good, bad
        taken, taken_running = observations, running  # the trials in this group's branch
        if group[0].condition is not None:
            taken = [o for o in observations if path in o[0]]
            taken_running = [v for v in running if path in v]
            if branch_split:
                group_good, group_bad = _split(taken, taken_running, gamma)
        categoricals = [p for p in group if isinstance(p.domain, Categorical)]
        rest = [p for p in group if not isinstance(p.domain, Categorical)]
        chosen = _propose_group(group, group_good, group_bad, rng, n_candidates, prior_weight, rank_weights,
                                category_smoothing, categories_first=categories_first and len(categoricals) >= 2
                                and bool(rest) and not any(p.path in selectors for p in categoricals))
        explore = _category_to_explore(categoricals, chosen, made, category_exploration, rng)
        if explore is not None:
            param, category = explore
            chosen = {param.path: category}
            others = [p for p in group if p is not param]
            if others:
                same = [(v, loss) for v, loss in taken if v[param.path] == category]
                same_running = [v for v in taken_running if v[param.path] == category]
                chosen.update(_propose_group(others, *_split(same, same_running, gamma), rng,
                                             max(1, n_candidates // 4), prior_weight, rank_weights=False,
                                             category_smoothing=category_smoothing))
        elif cell_min_trials is not None and categoricals and rest:
            kept = _cell_choices(categoricals, chosen, taken, cell_min_trials)
            if kept is not None:
                def agrees(v: Values) -> bool:
                    return all(v[p.path] == chosen[p.path] for p in kept)
                same = [o for o in taken if agrees(o[0])]
                chosen.update(_propose_group(rest, *_split(same, [v for v in taken_running if agrees(v)], gamma),
                                             rng, n_candidates, prior_weight, rank_weights, category_smoothing))
        values.update(chosen)
    return values


def _choices_apart(group: list[Parameter]) -> list[list[Parameter]]:
    """A group with several choices as one group per choice, then one for the rest; else itself."""
    choices = [p for p in group if isinstance(p.domain, Categorical)]
    if len(choices) < 2:
        return [group]
    rest = [p for p in group if not isinstance(p.domain, Categorical)]
    return [[p] for p in choices] + ([rest] if rest else [])


def _split(observations: Sequence[Observation], running: Sequence[Values], gamma: Callable[[int], int]
           ) -> tuple[list[Values], list[Values]]:
    """split_observations of the finished trials, with the running ones added to the bad."""
    good, bad = split_observations(observations, gamma)
    return good, [*bad, *running]


def _category_to_explore(categoricals: Sequence[Parameter], chosen: Values, observations: Sequence[Observation],
                         c: float, rng: np.random.Generator) -> tuple[Parameter, int] | None:
    """A (parameter, category) to propose instead of the model's pick, or None.

    Among the group's `choice`s whose pick is not under-explored while other categories are,
    one at random, and one of its under-explored categories at random. One at a time: the
    other choices are then made by the model of that category's trials, which finds the
    combinations that are good with it.
    """
    if c <= 0:
        return None
    lacking = []
    for param in categoricals:
        under = _under_explored(param, observations, c, len(categoricals))
        if len(under) and chosen[param.path] not in under:
            lacking.append((param, under))
    if not lacking:
        return None
    param, under = lacking[int(rng.integers(len(lacking)))]
    return param, int(rng.choice(under))


def _under_explored(param: Parameter, observations: Sequence[Observation], c: float,
                    n_choices: int = 1) -> np.ndarray:
    """The categories of `param` chosen fewer than min(c * sqrt(n / m), n / k) times in the n
    observations that made the choice, where m is the number of choices modelled together (a
    forced-exploration schedule: front-loaded, vanishing in share as n grows).

    The m choices of a group share the schedule: each explored trial also draws the other
    choices, so with c * sqrt(n) apiece nearly every early trial was a forced one once a group
    had four choices.
    """
    n_categories = len(param.domain.categories)
    made = [v[param.path] for v, _ in observations if param.path in v]
    counts = np.bincount(np.asarray(made, dtype=np.int64), minlength=n_categories)
    need = min(c * math.sqrt(len(made) / n_choices), len(made) / n_categories)
    return np.flatnonzero(counts < need)


def _cell_choices(categoricals: Sequence[Parameter], chosen: Values, observations: Sequence[Observation],
                  min_trials: int) -> list[Parameter] | None:
    """The choices on which the refit's observations agree with `chosen`: all of them, when at
    least `min_trials` observations made the same choices; else, dropping one choice at a time
    (the one whose loss adds the most agreeing observations; among equals the later one), those
    kept once the observations that agree on them are enough; else None.

    With several choices the full combination rarely has enough trials (4 x 3 x 3 x 2 = 72
    combinations), while the choices that move the best numbers are often fewer. One choice at
    a time costs m ** 2 counts, where trying every subset of the choices would cost 2 ** m.
    """
    if not observations:
        return None
    agree = np.array([[v[p.path] == chosen[p.path] for p in categoricals] for v, _ in observations], dtype=bool)
    kept = list(range(len(categoricals)))
    rows = agree.all(axis=1)
    while rows.sum() < min_trials and len(kept) > 1:
        gains = [agree[:, [k for k in kept if k != j]].all(axis=1).sum() for j in reversed(kept)]
        kept.remove(kept[len(kept) - 1 - int(np.argmax(gains))])
        rows = agree[:, kept].all(axis=1)
    return [categoricals[k] for k in kept] if rows.sum() >= min_trials else None


def _propose_group(group: Sequence[Parameter], good: Sequence[Values], bad: Sequence[Values],
                   rng: np.random.Generator, n_candidates: int, prior_weight: float,
                   rank_weights: bool, category_smoothing: float = 1.0, *, categories_first: bool = False) -> Values:
    """The draw from l (fitted to `good`, best first) with the largest l(x) / g(x) (g fitted to `bad`);
    with `categories_first`, the draw `_categories_first` picks (running trials in `bad` count as
    tried there)."""
    good = [v for v in good if group[0].path in v]
    bad = [v for v in bad if group[0].path in v]
    weights = 1.0 / np.sqrt(np.arange(1, len(good) + 1)) if rank_weights else None

    def fit(params: Sequence[Parameter]) -> tuple[ParzenEstimator, ParzenEstimator]:
        return (ParzenEstimator(params, good, prior_weight=prior_weight, weights=weights,
                                category_smoothing=category_smoothing),
                ParzenEstimator(params, bad, prior_weight=prior_weight, category_smoothing=category_smoothing))

    l, g = fit(group)
    candidates = l.sample(rng, n_candidates)
    score = l.log_pdf(candidates) - g.log_pdf(candidates)
    if categories_first:  # l(c) / g(c) by estimators over the group's choices alone
        choices = [i for i, param in enumerate(group) if isinstance(param.domain, Categorical)]
        columns = [candidates[i] for i in choices]
        l_c, g_c = fit([group[i] for i in choices])
        best = _categories_first([group[i].path for i in choices], columns,
                                 l_c.log_pdf(columns) - g_c.log_pdf(columns), score, [*good, *bad])
    else:
        best = int(np.argmax(score))
    return {param.path: column[best].item() for param, column in zip(group, candidates)}


def _categories_first(paths: Sequence[Path], columns: Sequence[np.ndarray], category_score: np.ndarray,
                      score: np.ndarray, tried: Sequence[Values]) -> int:
    """The candidate whose categories have the largest l(c) / g(c), the best of those by the whole
    l(x) / g(x); or the candidate with the best whole ratio (the joint pick) where its categories
    differ from those in one choice only and fewer than NEIGHBOUR_TRIALS of `tried` made them
    (running trials among them, so that asks in a row do not all try the same neighbour).

    By the whole ratio alone, the numbers decide the categories: a candidate that keeps the good
    combination competes with ones whose numbers happen to score higher, and with five choices
    the proposals scatter over combinations (on `mixed_flags` the good cell got a third of the
    trials, and its numbers were refined slowly). Picking the categories by their own evidence
    keeps to the good combination; the joint pick one choice away still gets a trial or two,
    since a choice may matter only beside the others (a scaler that suits one model alone).
    """
    greedy = np.flatnonzero(category_score >= category_score.max())
    best = int(greedy[np.argmax(score[greedy])])
    joint = int(np.argmax(score))
    if sum(int(column[joint] != column[best]) for column in columns) == 1:
        combination = [column[joint].item() for column in columns]
        made = sum(all(v[path] == c for path, c in zip(paths, combination)) for v in tried)
        if made < NEIGHBOUR_TRIALS:
            return joint
    return best


def split_observations(observations: Sequence[Observation], gamma: Callable[[int], int] = default_gamma
                       ) -> tuple[list[Values], list[Values]]:
    """The values of the good observations, best first, and of the bad ones, in arrival order.

    The best gamma(n) losses are good (at least one when there is one; ties keep arrival order).
    """
    n = len(observations)
    n_good = min(max(int(gamma(n)), 1 if n else 0), n)
    order = np.argsort(np.array([loss for _, loss in observations], dtype=float), kind="stable")
    return ([observations[i][0] for i in order[:n_good]],
            [observations[i][0] for i in np.sort(order[n_good:])])


def parameter_groups(params: Sequence[Parameter], multivariate: bool) -> list[list[Parameter]]:
    """One group per parameter, or (multivariate) one per branch condition, parents first."""
    if not multivariate:
        return [[p] for p in params]
    groups: dict[tuple[Path, int] | None, list[Parameter]] = {}
    for param in params:
        groups.setdefault(param.condition, []).append(param)
    return list(groups.values())


class ParzenEstimator:
    """A mixture of one kernel per observation and one for the prior, over a group of parameters.

    With several parameters each kernel is a product over them (multivariate TPE), so draws
    keep the combinations that were observed together.

    Args:
        params: The parameters modelled; every observation must set all of them.
        observations: The values of the observations.
        prior_weight: Weight of the prior kernel, relative to the observations' weights.
        weights: One weight per observation; all 1 when None.
        category_smoothing: A `choice`'s kernels put category_smoothing * prior_weight / k on
            each of its k categories, besides 1 on the observed one.
    """

    def __init__(self, params: Sequence[Parameter], observations: Sequence[Values], *,
                 prior_weight: float = 1.0, weights: np.ndarray | None = None,
                 category_smoothing: float = 1.0) -> None:
        weights = np.append(np.ones(len(observations)) if weights is None else weights, prior_weight)
        self.log_weights = np.log(weights / weights.sum())
        self.kernels = [_make_kernel(p, [v[p.path] for v in observations], prior_weight * category_smoothing)
                        for p in params]
        # The truncation masses of all numeric kernels in one call: most of the fitting time.
        numeric = [k for k in self.kernels if isinstance(k, _NumericKernel)]
        if numeric:
            low = np.concatenate([(k.scale.low - k.mus) / k.sigmas for k in numeric])
            high = np.concatenate([(k.scale.high - k.mus) / k.sigmas for k in numeric])
            for kernel, log_norm in zip(numeric, np.split(_log_mass(low, high), len(numeric))):
                kernel.log_norm = log_norm

    def sample(self, rng: np.random.Generator, size: int) -> list[np.ndarray]:
        """`size` draws, as one array of values per parameter."""
        components = rng.choice(len(self.log_weights), size=size, p=np.exp(self.log_weights))
        return [kernel.sample(rng, components) for kernel in self.kernels]

    def log_pdf(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """The log density (log probability for discrete values) of each draw.

        Densities of log-scale parameters are over log(value): the Jacobian would cancel in
        l(x) / g(x) anyway.
        """
        per_component = self.log_weights[None, :] + sum(
            kernel.log_pdf(column) for kernel, column in zip(self.kernels, columns))
        top = per_component.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(per_component - top).sum(axis=1, keepdims=True)))[:, 0]


# --- kernels per domain -------------------------------------------------------------------------

def _make_kernel(param: Parameter, observed: list[Any], smoothing: float) -> _NumericKernel | _CategoricalKernel:
    if isinstance(param.domain, Categorical):
        return _CategoricalKernel(len(param.domain.categories), observed, smoothing)
    return _NumericKernel(Scale(param.domain), observed)


class _NumericKernel:
    """Gaussian kernels (truncated to the domain) at the observations, and a wide one for the prior.

    A kernel's bandwidth is the distance to its farther neighbour (the paper's adaptive Parzen
    estimator), clipped to [width / min(100, n + 1), width] so that it never collapses onto a
    point nor spreads past the domain.
    """

    def __init__(self, scale: Scale, observed: list[Any]) -> None:
        self.scale = scale
        mus = scale.to_internal(np.asarray(observed, dtype=float))
        width = scale.width
        sigmas = np.clip(_neighbour_distances(mus, *scale.edges), width / min(100.0, len(mus) + 1.0), width)
        self.mus = np.append(mus, scale.prior_mu)
        self.sigmas = np.append(sigmas, scale.prior_sigma)
        self.log_norm = np.zeros(len(self.mus))  # log of each kernel's mass inside the bounds; set by ParzenEstimator

    def sample(self, rng: np.random.Generator, components: np.ndarray) -> np.ndarray:
        internal = _truncated_normal(rng, self.mus[components], self.sigmas[components],
                                     self.scale.low, self.scale.high)
        return self.scale.to_values(internal)

    def log_pdf(self, values: np.ndarray) -> np.ndarray:
        """(draws, components) log densities; for rounded values, the log mass of their bin."""
        values = np.asarray(values, dtype=float)
        bins = self.scale.bins(values)
        if bins is None:
            z = (self.scale.to_internal(values)[:, None] - self.mus) / self.sigmas
            log_pdf = -0.5 * z**2 - np.log(self.sigmas * math.sqrt(2 * math.pi))
        else:
            low, high = bins
            log_pdf = _log_mass((low[:, None] - self.mus) / self.sigmas, (high[:, None] - self.mus) / self.sigmas)
        return log_pdf - self.log_norm


def _neighbour_distances(mus: np.ndarray, low: float, high: float) -> np.ndarray:
    """For each point, the larger distance to its neighbours.

    The lowest and highest points look only inwards when there are two or more: an outermost
    point far from the edge would otherwise get a kernel as wide as the gap to the edge.
    """
    if len(mus) == 0:
        return mus
    order = np.argsort(mus, kind="stable")
    padded = np.concatenate([[low], mus[order], [high]])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if len(mus) >= 2:
        gaps[0] = padded[2] - padded[1]
        gaps[-1] = padded[-2] - padded[-3]
    out = np.empty_like(mus)
    out[order] = gaps
    return out


class _CategoricalKernel:
    """Each observation puts 1 on its category plus `smoothing` spread evenly; the prior is uniform."""

    def __init__(self, n_categories: int, observed: list[Any], smoothing: float) -> None:
        counts = np.full((len(observed) + 1, n_categories), smoothing / n_categories)
        counts[np.arange(len(observed)), np.asarray(observed, dtype=np.int64)] += 1.0
        counts[-1] = 1.0  # the prior kernel
        self.log_probs = np.log(counts / counts.sum(axis=1, keepdims=True))

    def sample(self, rng: np.random.Generator, components: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(np.exp(self.log_probs[components]), axis=1)
        draws = (cumulative < rng.random(len(components))[:, None] * cumulative[:, -1:]).sum(axis=1)
        return draws.astype(np.int64)

    def log_pdf(self, values: np.ndarray) -> np.ndarray:
        return self.log_probs[:, np.asarray(values, dtype=np.int64)].T


# --- the standard normal distribution, in numpy alone -------------------------------------------

def _erfc_abs(z: np.ndarray) -> np.ndarray:
    """erfc(|z| / sqrt 2) = 2 P(Z > |z|) for a standard normal Z, with small relative error far out.

    Uses the Chebyshev fit of erfc from Numerical Recipes (fractional error < 1.2e-7).
    """
    x = np.abs(z) * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isinf(x), 0.0, t * np.exp(-x * x + poly))


def _log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log P(a < Z < b), elementwise, for a <= b.

    Subtracts the two tail probabilities on the side where both are small, so that a bin far
    in a tail keeps its precision instead of becoming 1 - 1. One erfc per bound: this is most
    of the cost of a suggestion with integer or bounded parameters.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    tail_a, tail_b = 0.5 * _erfc_abs(a), 0.5 * _erfc_abs(b)  # P(Z > |a|), P(Z > |b|)
    # a >= 0: P(Z > a) - P(Z > b); b <= 0: P(Z < b) - P(Z < a); else 1 - P(Z > b) - P(Z < a).
    mass = np.where(a >= 0, tail_a - tail_b, np.where(b <= 0, tail_b - tail_a, 1.0 - tail_b - tail_a))
    return np.log(np.maximum(mass, 1e-300))


def _truncated_normal(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray,
                      low: float, high: float) -> np.ndarray:
    """Normal draws kept inside [low, high] by redrawing the ones outside.

    Kernel centres lie inside the bounds and bandwidths are at most the width, so each draw
    lands inside with probability above 1/3 and a few rounds suffice.
    """
    out = rng.normal(mu, sigma)
    for _ in range(100):
        outside = (out < low) | (out > high)
        if not outside.any():
            return out
        out[outside] = rng.normal(mu[outside], sigma[outside])
    return np.clip(out, low, high)
