"""TPE's parts: the normal distribution in numpy, the Parzen estimators per domain, the split,
the groups, and that the whole beats random search."""

from __future__ import annotations

import math
import pickle
import time
from collections import Counter

import numpy as np
import pytest

from asynctune.algorithms.search.basic import RandomSearch
from asynctune.algorithms.search.model_based import is_active
from asynctune.algorithms.search.tpe import (
    NEIGHBOUR_TRIALS, ParzenEstimator, TPESearch, _categories_first, _choices_apart, _log_mass, _truncated_normal, default_gamma,
    parameter_groups, propose, split_observations,
)
from asynctune.core.space import (
    Branch, Parameter, Space, choice, lograndint, loguniform, qloguniform, qrandint, qrandn, quniform, randint, randn,
    uniform,
)


def reference_mass(a: float, b: float) -> float:
    return 0.5 * (math.erf(b / math.sqrt(2)) - math.erf(a / math.sqrt(2)))


@pytest.mark.parametrize("a, b", [(-1, 1), (-10, 0.5), (0, 0.01), (2, 3), (5, 5.5), (-7, -6), (-0.3, 40)],
                         ids=["centre", "left-half", "narrow", "right", "far-right", "far-left", "to-tail"])
def test_log_mass_matches_erf_even_in_the_tails(a: float, b: float) -> None:
    # The far tails are where 1 - 1 would lose everything; the relative error must stay small.
    expected = reference_mass(a, b) if a < 4 else 0.5 * (math.erfc(a / math.sqrt(2)) - math.erfc(b / math.sqrt(2)))
    if b < -4:
        expected = 0.5 * (math.erfc(-b / math.sqrt(2)) - math.erfc(-a / math.sqrt(2)))
    assert math.isclose(math.exp(_log_mass(np.array([a]), np.array([b]))[0]), expected, rel_tol=1e-5)


def test_truncated_normal_stays_inside_and_keeps_its_shape() -> None:
    rng = np.random.default_rng(0)
    draws = _truncated_normal(rng, np.full(20000, 0.9), np.full(20000, 0.5), 0.0, 1.0)
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert 0.55 < draws.mean() < 0.65  # a normal at 0.9 cut at 1 leans left of 0.9


def fitted(domain, observed) -> ParzenEstimator:
    param = Parameter(("x",), domain)
    return ParzenEstimator([param], [{("x",): v} for v in observed])


@pytest.mark.parametrize("domain, values", [
    (randint(-3, 4), np.arange(-3, 4)),
    (qrandint(0, 20, 5), np.arange(0, 21, 5)),
    (quniform(0.0, 1.0, 0.25), np.arange(0, 1.01, 0.25)),
    (lograndint(1, 50), np.arange(1, 50)),
    (choice(["a", "b", "c"]), np.arange(3)),
], ids=["randint", "qrandint", "quniform", "lograndint", "choice"])
def test_discrete_estimators_are_distributions(domain, values) -> None:
    estimator = fitted(domain, values[[0, -1, 1]])
    assert math.isclose(np.exp(estimator.log_pdf([values])).sum(), 1.0, rel_tol=1e-4)


@pytest.mark.parametrize("domain, low, high, observed, internal", [
    (uniform(-2.0, 3.0), -2.0, 3.0, [-1.9, 0.5, 2.5], lambda x: x),
    (loguniform(1e-3, 10.0), math.log(1e-3), math.log(10.0), [1.1e-3, 0.1, 6.0], np.exp),
    (randn(1.0, 2.0), -30.0, 30.0, [-4.0, 1.0, 7.5], lambda x: x),
], ids=["uniform", "loguniform-over-log", "randn"])
def test_continuous_estimators_integrate_to_one(domain, low, high, observed, internal) -> None:
    estimator = fitted(domain, observed)
    grid = np.linspace(low, high, 20001)
    density = np.exp(estimator.log_pdf([internal(grid)]))
    assert math.isclose(float(np.sum(density) * (grid[1] - grid[0])), 1.0, rel_tol=2e-3)


def test_estimator_puts_its_mass_near_the_observations() -> None:
    estimator = fitted(uniform(0.0, 10.0), [2.0, 2.1, 2.2, 1.9, 2.05] * 4)
    draws = estimator.sample(np.random.default_rng(0), 1000)[0]
    assert np.mean(np.abs(draws - 2.0) < 1.0) > 0.8


@pytest.mark.parametrize("domain", [qloguniform(1.0, 100.0, 5.0), qrandn(0.0, 1.0, 0.5), lograndint(1, 1000)],
                         ids=["qloguniform", "qrandn", "lograndint"])
def test_draws_are_on_the_domains_grid(domain) -> None:
    draws = fitted(domain, []).sample(np.random.default_rng(1), 200)[0]
    if hasattr(domain, "q") and domain.q:
        assert np.allclose(draws / domain.q, np.round(draws / domain.q))
    else:
        assert draws.dtype == np.int64 and draws.min() >= 1 and draws.max() <= 999


def test_split_keeps_the_best_gamma_and_puts_infinite_losses_last() -> None:
    observations = [({"x": i}, loss) for i, loss in enumerate([3.0, math.inf, 1.0, 2.0, 1.0, 5.0])]
    good, bad = split_observations(observations, lambda n: 3)
    assert good == [{"x": 2}, {"x": 4}, {"x": 3}]  # best first (the weights go by rank); ties in arrival order
    assert bad == [{"x": 0}, {"x": 1}, {"x": 5}]  # arrival order
    assert split_observations([], default_gamma) == ([], [])
    assert [default_gamma(n) for n in (1, 10, 50, 1000)] == [1, 2, 10, 25]


def test_groups_follow_the_branches() -> None:
    space = Space({"a": uniform(0, 1), "m": choice([{"k": uniform(0, 1), "j": randint(0, 3)}, {"z": uniform(0, 1)}]),
                   "b": uniform(0, 1)})
    params = space.parameters
    names = [[p.name for p in group] for group in parameter_groups(params, multivariate=True)]
    assert names == [["a", "m", "b"], ["m/<0>/k", "m/<0>/j"], ["m/<1>/z"]]
    assert len(parameter_groups(params, multivariate=False)) == len(params)


def test_propose_works_on_any_list_of_observations() -> None:
    # BOHB keeps one list per budget and calls the model on one of them.
    space = Space({"x": uniform(0.0, 1.0), "m": choice([{"k": randint(0, 10)}, "plain"])})
    rng = np.random.default_rng(0)
    observations = [({("x",): x, ("m",): 0, ("m", Branch(0), "k"): 7}, abs(x - 0.8)) for x in rng.uniform(size=30)]
    observations += [({("x",): x, ("m",): 1}, 5.0) for x in rng.uniform(size=10)]
    proposals = [propose(space.parameters, observations, rng) for _ in range(20)]
    assert all(is_active(p, values) for values in proposals for p in space.parameters if p.path in values)
    assert np.median([v[("x",)] for v in proposals]) == pytest.approx(0.8, abs=0.15)
    assert sum(v[("m",)] == 0 for v in proposals) >= 15


def sphere(config: dict) -> float:
    return sum((config[k] - 0.7) ** 2 for k in ("a", "b", "c")) + 0.1 * abs(config["n"] - 12)


SPHERE = {"a": uniform(-1, 2), "b": uniform(-1, 2), "c": uniform(-1, 2), "n": randint(0, 50)}


def best_of(searcher, n: int = 40) -> float:
    searcher.set_search_properties("loss", "min", Space(SPHERE))
    searcher.max_trials(n)
    best = math.inf
    for i in range(n):
        config = searcher.suggest(str(i))
        loss = sphere(config)
        searcher.on_trial_complete(str(i), {"loss": loss})
        best = min(best, loss)
    return best


def test_tpe_beats_random_search_by_a_clear_margin() -> None:
    seeds = range(5)
    tpe = np.median([best_of(TPESearch(seed=s)) for s in seeds])
    random = np.median([best_of(RandomSearch(seed=s)) for s in seeds])
    assert tpe < random / 3, (tpe, random)


def test_suggest_stays_fast_with_many_observations() -> None:
    searcher = TPESearch(seed=0)
    space = dict(SPHERE, lr=loguniform(1e-5, 1), kind=choice(["x", "y", "z"]))
    searcher.set_search_properties("loss", "min", Space(space))
    rng = np.random.default_rng(0)
    for i in range(200):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": float(rng.uniform())})
    times = []
    for i in range(10):  # CPU time: other processes on a busy machine do not inflate it
        start = time.process_time()
        searcher.suggest(f"t{i}")
        times.append(time.process_time() - start)
    assert np.median(times) < 0.1  # 3-5 ms on a laptop core; this catches a quadratic slip


def test_suggest_stays_fast_with_many_choices() -> None:
    # The refit on the trials that share most of the picked choices must not try every subset
    # of 12 choices (2 ** 12 of them: about 0.4 s per suggestion at 300 trials).
    space = {f"c{j}": choice([0, 1, 2]) for j in range(12)}
    searcher = TPESearch(seed=0, n_startup_trials=300)
    searcher.set_search_properties("loss", "min", Space({**space, "x": uniform(0, 1)}))
    for i in range(300):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": config["x"] + sum(config[f"c{j}"] for j in range(12))})
    times = []
    for i in range(10):
        start = time.process_time()
        searcher.suggest(f"t{i}")
        times.append(time.process_time() - start)
        searcher.on_trial_complete(f"t{i}", None, error=True)
    assert np.median(times) < 0.1  # 4 ms on one core of this machine


@pytest.mark.parametrize("constant_liar", [True, False], ids=["liar", "no-liar"])
def test_constant_liar_counts_running_trials_as_bad(constant_liar: bool, monkeypatch) -> None:
    from asynctune.algorithms.search import tpe

    seen = []
    monkeypatch.setattr(tpe, "propose", lambda params, observations, rng, **kw:
                        seen.append((observations, list(kw["running"]))) or {})
    searcher = TPESearch(metric="loss", mode="min", n_startup_trials=1, constant_liar=constant_liar, seed=0)
    searcher.set_search_properties(None, None, Space({"x": uniform(0, 1)}))
    searcher.suggest("done")
    searcher.on_trial_complete("done", {"loss": 0.5})
    running = searcher.suggest("running")["x"]
    searcher.suggest("next")
    finished, shown_running = seen[-1]
    assert [loss for _, loss in finished] == [0.5]
    assert shown_running == ([{("x",): running}] if constant_liar else [])


def feed(searcher: TPESearch, space: dict, loss, n: int) -> list[dict]:
    """Suggest and complete n trials with loss(config); returns the configs."""
    searcher.set_search_properties("loss", "min", Space(space))
    configs = []
    for i in range(n):
        configs.append(searcher.suggest(str(i)))
        searcher.on_trial_complete(str(i), {"loss": loss(configs[-1])})
    return configs


def proposals(searcher: TPESearch, n: int) -> list[dict]:
    """n more suggestions from the same model (each ends in error, so it is not learnt from)."""
    out = []
    for i in range(n):
        out.append(searcher.suggest(f"p{i}"))
        searcher.on_trial_complete(f"p{i}", None, error=True)
    return out


def test_the_best_good_observations_weigh_most() -> None:
    # Two good pairs placed symmetrically about the bad ones; the pair at 0.8 holds the two best.
    # With equal weights l (and so the proposals) is symmetric; weighed by rank it is not.
    space = Space({"x": uniform(0.0, 1.0)})
    observations = [({("x",): x}, loss) for x, loss in [(0.78, 0.0), (0.82, 0.1), (0.18, 1.0), (0.22, 1.1)]]
    observations += [({("x",): x}, 10.0) for x in np.linspace(0.45, 0.55, 20)]

    def right_of_centre(rank_weights: bool) -> float:
        rng = np.random.default_rng(0)
        xs = [propose(space.parameters, observations, rng, gamma=lambda n: 4, rank_weights=rank_weights)[("x",)]
              for _ in range(200)]
        return float(np.mean(np.array(xs) > 0.5))

    assert right_of_centre(True) > 0.9
    assert 0.35 < right_of_centre(False) < 0.65


def trap(config: dict) -> float:
    """"trap" is fair everywhere (0.3-0.4); "good" is bad except in a narrow basin around x = 0.8
    (0 there), so the few random trials make "trap" look best; "flat" is worse than "trap"."""
    if config["kind"] == "trap":
        return 0.3 + 0.1 * config["x"]
    if config["kind"] == "good":
        return 1.0 - math.exp(-((config["x"] - 0.8) ** 2) / (2 * 0.06**2))
    return 0.6 + 0.1 * config["x"]


def test_tpe_finds_the_category_that_looks_bad_early() -> None:
    # Within 80 trials, the default finds the basin of "good" (below trap's best, 0.3) in most
    # seeds: every category gets at least 1.5 sqrt(n) trials, fitted to its own trials. (The
    # previous default, a 5% floor per category, found it in 2 seeds of 10; none at all, 4 of 12.)
    space = {"kind": choice(["trap", "flat", "good"]), "x": uniform(0.0, 1.0)}
    found = [min(trap(c) for c in feed(TPESearch(seed=s), space, trap, 80)) < 0.3 for s in range(10)]
    assert sum(found) >= 8, found


def test_every_category_gets_its_share_and_the_model_the_rest() -> None:
    # "trap" is best at every point; each other category still gets min(1.5 sqrt(n), n / 4)
    # of the n trials so far, and the model's pick ("trap") the rest.
    kinds = ["trap", "b", "c", "d"]
    configs = feed(TPESearch(seed=0), {"kind": choice(kinds), "x": uniform(0, 1)},
                   lambda c: (0.0 if c["kind"] == "trap" else 1.0) + c["x"], 100)
    counts = Counter(c["kind"] for c in configs)
    assert all(counts[k] >= min(1.5 * math.sqrt(99), 99 / 4) for k in kinds[1:]), counts
    assert counts["trap"] > 0.4 * 100, counts
    off = Counter(c["kind"] for c in feed(TPESearch(seed=0, category_exploration=0), {
        "kind": choice(kinds), "x": uniform(0, 1)}, lambda c: (0.0 if c["kind"] == "trap" else 1.0) + c["x"], 100))
    assert off["trap"] > counts["trap"], (off, counts)  # 0 turns it off


def test_a_forced_category_gets_the_values_that_are_good_for_it() -> None:
    # Within "b", x near 0.8 is best, though every "b" is worse than every "a" (best at x = 0.2).
    # When "b" is proposed for exploration, x must come from the "b" trials, not the joint model.
    configs = feed(TPESearch(seed=1, category_exploration=4.0), {"kind": choice(["a", "b"]), "x": uniform(0, 1)},
                   lambda c: abs(c["x"] - 0.2) if c["kind"] == "a" else 2 + abs(c["x"] - 0.8), 120)
    xs = [c["x"] for c in configs[40:] if c["kind"] == "b"]
    assert len(xs) > 20
    assert np.median(xs) == pytest.approx(0.8, abs=0.15), np.median(xs)


def test_the_model_takes_over_after_the_default_startup_trials(monkeypatch) -> None:
    from asynctune.algorithms.search import tpe

    calls = []
    original = tpe.propose
    monkeypatch.setattr(tpe, "propose", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    searcher = TPESearch(seed=0)
    searcher.set_search_properties("loss", "min", Space({"x": uniform(0, 1)}))
    for i in range(11):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": config["x"]})
        assert len(calls) == max(0, i + 1 - 8), i  # 8 random trials, then the model every time


@pytest.mark.parametrize("value", [-0.1, math.inf, math.nan, "1.5", True])
def test_category_exploration_must_be_a_number_at_least_0(value) -> None:
    with pytest.raises(ValueError, match="category_exploration must be a number >= 0"):
        TPESearch(category_exploration=value)


def test_an_explored_category_gets_the_other_categories_that_are_good_with_it() -> None:
    # "a" = 0 with "b" = 0 is best overall; among a = 3's trials, b = 2 is far best. When a = 3
    # is proposed for exploration, "b" must come from a = 3's trials (2), not the joint pick (0).
    space = Space({"a": choice(list(range(5))), "b": choice(["p", "q", "r"]), "x": uniform(0, 1)})
    rng = np.random.default_rng(0)
    observations = [({("a",): 0, ("b",): i % 3, ("x",): float(x)}, 0.1 + abs(x - 0.5) + (0.0 if i % 3 == 0 else 0.3))
                    for i, x in enumerate(rng.uniform(size=30))]  # every b is tried: only "a" lacks trials
    observations += [({("a",): 3, ("b",): b, ("x",): float(rng.uniform())}, 1.0 if b == 2 else 3.0)
                     for b in (0, 1, 2, 0, 1, 2)]
    picks = [propose(space.parameters, observations, rng, category_exploration=1.5) for _ in range(300)]
    with_3 = [p[("b",)] for p in picks if p[("a",)] == 3]
    assert len(with_3) > 20
    assert np.mean(np.array(with_3) == 2) > 0.7, Counter(with_3)


def test_a_well_tried_combination_gets_its_numbers_from_its_own_trials() -> None:
    # In kind "a", x is best at 0.2; the trials of kind "b" sit near 0.8 and are as good, so in
    # a joint model their kernels pull the x of "a" there too. Fitted to the trials of "a"
    # alone, x stays near 0.2.
    space = Space({"kind": choice(["a", "b"]), "x": uniform(0, 1)})
    rng = np.random.default_rng(1)
    observations = [({("kind",): 0, ("x",): float(x)}, abs(x - 0.2)) for x in rng.uniform(size=20)]
    observations += [({("kind",): 1, ("x",): float(x)}, 0.03 + abs(x - 0.8)) for x in rng.uniform(0.7, 0.9, size=20)]

    def xs_of_a(cell_min_trials: int | None) -> np.ndarray:
        picks = [propose(space.parameters, observations, rng, cell_min_trials=cell_min_trials) for _ in range(300)]
        return np.array([p[("x",)] for p in picks if p[("kind",)] == 0])

    own, joint = xs_of_a(5), xs_of_a(None)
    assert len(own) >= 8 and len(joint) >= 8
    assert np.mean(np.abs(own - 0.2) < 0.15) > 0.8, own
    assert np.mean(np.abs(joint - 0.2) < 0.15) < 0.3, joint


def test_choices_modelled_together_share_the_exploration_schedule() -> None:
    # Of 64 trials, category 1 of "a" has 7 and is always bad. Alone, "a" needs 1.5 sqrt(64) = 12
    # trials per category, so 1 is explored every time; with three more choices in its group the
    # four share the schedule, 1.5 sqrt(64 / 4) = 6 each, and 7 is enough: the model's pick stays.
    rng = np.random.default_rng(0)
    xs = rng.uniform(size=64)
    a = np.array([1] * 7 + [0] * 57)
    others = {name: np.arange(64) % 2 for name in ("b", "c", "d")}  # 32 trials per category

    def share_of_1(names: tuple[str, ...]) -> float:
        space = Space({"a": choice([0, 1]), **{n: choice([0, 1]) for n in names}, "x": uniform(0, 1)})
        observations = [({("a",): int(a[i]), **{(n,): int(others[n][i]) for n in names}, ("x",): float(xs[i])},
                         float(xs[i]) + 5.0 * a[i]) for i in range(64)]
        picks = [propose(space.parameters, observations, rng, category_exploration=1.5) for _ in range(100)]
        return float(np.mean([p[("a",)] == 1 for p in picks]))

    assert share_of_1(()) > 0.9
    assert share_of_1(("b", "c", "d")) < 0.2


def test_a_combination_with_few_trials_gets_its_numbers_from_the_choices_it_shares() -> None:
    # As in the test above, but "e" (which does not matter) splits the trials of each kind into
    # five combinations of 4, too few for a model of their own: the 20 trials of the same kind
    # are used instead, so x in kind "a" stays near 0.2 (the joint model pulls it to 0.8).
    space = Space({"kind": choice(["a", "b"]), "e": choice(list(range(5))), "x": uniform(0, 1)})
    rng = np.random.default_rng(1)
    observations = [({("kind",): 0, ("e",): i % 5, ("x",): float(x)}, abs(x - 0.2))
                    for i, x in enumerate(rng.uniform(size=20))]
    observations += [({("kind",): 1, ("e",): i % 5, ("x",): float(x)}, 0.03 + abs(x - 0.8))
                     for i, x in enumerate(rng.uniform(0.7, 0.9, size=20))]
    picks = [propose(space.parameters, observations, rng, cell_min_trials=5) for _ in range(300)]
    xs = np.array([p[("x",)] for p in picks if p[("kind",)] == 0])
    assert len(xs) >= 8
    assert np.mean(np.abs(xs - 0.2) < 0.15) > 0.8, xs


def test_a_branch_is_modelled_on_its_own_good_trials() -> None:
    # Branch 1 is worse than branch 0 everywhere, so the overall split has no good trial in it
    # and its parameter would come from the prior. Split among its own trials, b goes to 0.8.
    space = Space({"m": choice([{"a": uniform(0, 1)}, {"b": uniform(0, 1)}])})
    rng = np.random.default_rng(1)
    observations = [({("m",): 0, ("m", Branch(0), "a"): float(a)}, abs(a - 0.2)) for a in rng.uniform(size=30)]
    observations += [({("m",): 1, ("m", Branch(1), "b"): float(b)}, 5 + abs(b - 0.8)) for b in np.linspace(0, 1, 15)]

    def bs(branch_split: bool) -> np.ndarray:
        # category_exploration=6: branch 1 lacks trials, so it is proposed every time
        picks = [propose(space.parameters, observations, rng, category_exploration=6.0, branch_split=branch_split)
                 for _ in range(200)]
        return np.array([p[("m", Branch(1), "b")] for p in picks if p[("m",)] == 1])

    own, overall = bs(True), bs(False)
    assert len(own) == len(overall) == 200
    assert np.mean(np.abs(own - 0.8) < 0.1) > 0.8, np.median(own)
    assert np.mean(np.abs(overall - 0.8) < 0.1) < 0.2, np.median(overall)


@pytest.mark.parametrize("value", [0, -1.0, math.inf, "2", True])
def test_category_smoothing_must_be_a_positive_number(value) -> None:
    with pytest.raises(ValueError, match="category_smoothing must be a number > 0"):
        TPESearch(category_smoothing=value)


# --- categories first ---------------------------------------------------------------------------

_AB = np.array([[0.10, 0.15, 0.20], [0.30, 0.35, 0.00], [0.15, 0.20, 0.25]])
FLAGS = {"a": choice([0, 1, 2]), "b": choice([0, 1, 2]), "c": choice([0, 1]), "d": choice([0, 1]),
         "e": choice([0, 1, 2, 3]), "x": uniform(0, 1)}


def flags(config: dict) -> float:
    """a and b interact (the best pair is in neither the best row nor column), c == d costs 0.08,
    e does not matter, the best x depends on a."""
    return float(_AB[config["a"], config["b"]] + (0.08 if config["c"] == config["d"] else 0.0)
                 + 0.5 * (config["x"] - (0.2, 0.7, 0.5)[config["a"]]) ** 2)


def test_categories_picked_first_keep_to_the_good_combination() -> None:
    # With five choices, the candidate with the best whole l(x) / g(x) takes its categories from
    # wherever its numbers score well, so the proposals scatter over combinations; picked by
    # their own l(c) / g(c), more of them stay in the best cell (a = 1, b = 2, c != d).
    def share_in_best_cell(categories_first: bool) -> float:
        shares = []
        for seed in range(16):
            configs = feed(TPESearch(seed=seed, categories_first=categories_first), FLAGS, flags, 80)
            shares.append(np.mean([(c["a"], c["b"]) == (1, 2) and c["c"] != c["d"] for c in configs[40:]]))
        return float(np.median(shares))

    first, joint = share_in_best_cell(True), share_in_best_cell(False)
    assert first >= 0.7, first
    assert first > joint + 0.1, (first, joint)


def test_the_joint_pick_one_choice_away_gets_a_trial_or_two() -> None:
    # Candidates over two choices: 0 has the best categories by l(c) / g(c), 1 the best whole
    # ratio and differs from 0 in one choice, 2 differs in both.
    columns = [np.array([0, 0, 1]), np.array([0, 1, 1])]
    category_score = np.array([2.0, 1.0, 0.0])
    paths = [("p",), ("q",)]
    neighbour = {("p",): 0, ("q",): 1}
    assert _categories_first(paths, columns, category_score, np.array([0.0, 5.0, 1.0]), []) == 1
    tried = [neighbour] * (NEIGHBOUR_TRIALS - 1)
    assert _categories_first(paths, columns, category_score, np.array([0.0, 5.0, 1.0]), tried) == 1
    tried = [neighbour] * NEIGHBOUR_TRIALS  # it had its trials
    assert _categories_first(paths, columns, category_score, np.array([0.0, 5.0, 1.0]), tried) == 0
    assert _categories_first(paths, columns, category_score, np.array([0.0, 1.0, 5.0]), []) == 0  # two away
    # Among the candidates with the best categories, the best whole ratio.
    columns = [np.array([0, 0, 1]), np.array([0, 0, 1])]
    assert _categories_first(paths, columns, np.array([2.0, 2.0, 0.0]), np.array([1.0, 3.0, 0.0]), []) == 1


def test_categories_first_applies_to_groups_of_several_choices_only() -> None:
    one_choice = {"kind": choice(["a", "b", "c"]), "x": uniform(0, 1)}
    loss = lambda c: {"a": 0.0, "b": 0.2, "c": 0.4}[c["kind"]] + abs(c["x"] - 0.3)  # noqa: E731
    assert feed(TPESearch(seed=3), one_choice, loss, 30) == feed(TPESearch(seed=3, categories_first=False),
                                                                 one_choice, loss, 30)
    # 40 trials: for the first 16 the choices are picked one by one (early_choices_alone).
    assert feed(TPESearch(seed=3), FLAGS, flags, 40) != feed(TPESearch(seed=3, categories_first=False),
                                                             FLAGS, flags, 40)


def test_categories_first_leaves_groups_with_a_branch_choice_as_they_were() -> None:
    space = {"model": choice([{"name": "a", "x": uniform(0, 1)}, {"name": "b", "y": uniform(0, 1)}]),
             "scaler": choice([0, 1, 2]), "z": uniform(0, 1)}

    def loss(c: dict) -> float:
        inner = c["model"]["x"] if c["model"]["name"] == "a" else 0.2 + c["model"]["y"]
        return inner + 0.1 * c["scaler"] + abs(c["z"] - 0.5)

    assert feed(TPESearch(seed=2), space, loss, 30) == feed(TPESearch(seed=2, categories_first=False), space, loss, 30)


# --- early choices alone ------------------------------------------------------------------------

def _crossed_observations(rng: np.random.Generator, n: int) -> list:
    """The good trials: a = 0 twice and b = 0 twice, but never together; the bad ones elsewhere."""
    good = [({("a",): a, ("b",): b, ("x",): float(rng.uniform())}, 0.1 * float(rng.uniform()))
            for a, b in [(0, 1), (0, 2), (1, 0), (2, 0)]]
    bad = [({("a",): int(rng.integers(1, 4)), ("b",): int(rng.integers(1, 4)), ("x",): float(rng.uniform())},
            1.0 + float(rng.uniform())) for _ in range(n - len(good))]
    return good + bad


def test_early_choices_alone_recombine_what_each_choice_has_shown() -> None:
    # a = 0 and b = 0 have each been good, but never together. Modelled jointly, the choices
    # keep to the pairs seen; picked one by one (while trials are few), (0, 0) is proposed, as
    # an independent model would.
    space = Space({"a": choice([0, 1, 2, 3]), "b": choice([0, 1, 2, 3]), "x": uniform(0, 1)})
    rng = np.random.default_rng(0)
    observations = _crossed_observations(rng, 20)

    def share_unseen(choices_alone_until: int) -> float:
        picks = [propose(space.parameters, observations, rng, choices_alone_until=choices_alone_until)
                 for _ in range(300)]
        return float(np.mean([(p[("a",)], p[("b",)]) == (0, 0) for p in picks]))

    alone, joint = share_unseen(21), share_unseen(0)
    assert alone > 0.8, alone
    assert joint < 0.2, joint


def test_early_choices_alone_end_after_twice_the_start_and_leave_single_choices() -> None:
    space = Space({"a": choice([0, 1, 2, 3]), "b": choice([0, 1, 2, 3]), "x": uniform(0, 1)})
    observations = _crossed_observations(np.random.default_rng(1), 20)

    def picks(choices_alone_until: int) -> list:
        rng = np.random.default_rng(5)
        return [propose(space.parameters, observations, rng, choices_alone_until=choices_alone_until)
                for _ in range(20)]

    assert picks(20) == picks(0)  # 20 finished trials: the joint model again
    assert picks(21) != picks(0)
    assert _choices_apart(list(space.parameters)) == [[p] for p in space.parameters[:2]] + [[space.parameters[2]]]
    one_choice = Space({"kind": choice(["a", "b"]), "x": uniform(0, 1), "y": uniform(0, 1)}).parameters
    assert _choices_apart(list(one_choice)) == [list(one_choice)]
    # TPESearch: until 2 * n_startup_trials trials have finished.
    loss = lambda c: float(_AB[c["a"] % 3, c["b"] % 3] + abs(c["x"] - 0.5))  # noqa: E731
    crossed = {"a": choice([0, 1, 2]), "b": choice([0, 1, 2]), "x": uniform(0, 1)}
    assert feed(TPESearch(seed=4, n_startup_trials=4), crossed, loss, 8) != feed(
        TPESearch(seed=4, n_startup_trials=4, early_choices_alone=False), crossed, loss, 8)
    single = {"kind": choice([0, 1, 2]), "x": uniform(0, 1)}
    assert feed(TPESearch(seed=4), single, loss_single := (lambda c: c["kind"] + abs(c["x"] - 0.5)), 20) == feed(
        TPESearch(seed=4, early_choices_alone=False), single, loss_single, 20)


@pytest.mark.parametrize("option", ["categories_first", "early_choices_alone"])
def test_a_searcher_pickled_before_an_option_existed_goes_on_as_it_began(option: str) -> None:
    searcher = TPESearch(seed=0)
    searcher.set_search_properties("loss", "min", Space(FLAGS))
    del searcher.__dict__[option]  # as unpickled from an older version
    restored = pickle.loads(pickle.dumps(searcher))
    for i in range(12):
        config = restored.suggest(str(i))
        restored.on_trial_complete(str(i), {"loss": flags(config)})
    assert getattr(restored, option) is False  # a resumed experiment keeps the algorithm it began with
