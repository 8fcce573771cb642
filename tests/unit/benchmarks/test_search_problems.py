"""The search-quality suite (benchmarks/search_quality): every problem's stated minimum is right,
and every method searches the same space."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from asynctune.core.space import Space
from benchmarks.search_quality.peers import asynctune_space, hyperopt_space, optuna_config, skopt_dimensions
from benchmarks.search_quality.problems import CATEGORIES, HELDOUT, PROBLEMS, TUNING, Cat, Cond, Float, Int, Param
from benchmarks.search_quality.tables import ratio_interval, regret_table, replace_between_markers
from benchmarks.search_quality.traces import one_run, regret_at

KNOWN = {name: p for name, p in PROBLEMS.items() if p.argmin is not None}


def test_the_halves_cover_every_category_and_do_not_overlap():
    assert len(TUNING) + len(HELDOUT) >= 12 and not set(TUNING) & set(HELDOUT)
    for half in (TUNING, HELDOUT):
        assert {PROBLEMS[p].category for p in half} == set(CATEGORIES)


@pytest.mark.parametrize("name", KNOWN, ids=KNOWN)
def test_the_argmin_has_zero_regret_and_random_configs_none_below(name):
    problem = PROBLEMS[name]
    assert problem.f(problem.argmin) - problem.optimum == pytest.approx(0.0, abs=1e-5)
    space, rng = Space(asynctune_space(problem.space)), np.random.default_rng(0)
    values = [problem.f(space.sample(rng)) for _ in range(300)]
    assert min(values) > problem.optimum  # the optimum is a lower bound that random search does not reach


def test_a_noisy_objective_draws_the_same_noise_per_seed_and_returns_the_noiseless_value():
    problem = PROBLEMS["noisy_branin"]
    first, again, other = problem.objective(3), problem.objective(3), problem.objective(4)
    seen = [first(problem.argmin) for _ in range(5)]
    assert seen == [again(problem.argmin) for _ in range(5)]
    assert [v for v, _ in seen] != [other(problem.argmin)[0] for _ in range(5)]
    assert all(true == pytest.approx(problem.optimum, abs=1e-5) and noisy != true for noisy, true in seen)


def test_a_trace_recommends_the_best_seen_value_and_scores_its_noiseless_regret():
    problem_name, method, seed, trace = one_run(("noisy_branin", "random", 0, 30))
    assert trace["budget"] == 30 and trace["best"][0][0] == 1
    evaluate, seen, true = PROBLEMS[problem_name].objective(seed), [], []
    from benchmarks.search_quality.peers import METHODS

    def record(config: dict[str, Any]) -> float:
        value, noiseless = evaluate(config)
        seen.append(value)
        true.append(noiseless)
        return value

    METHODS[method](PROBLEMS[problem_name].space, record, 30, seed)  # the same run again
    for budget in (1, 10, 30):
        best = int(np.argmin(seen[:budget]))
        assert regret_at(trace, budget) == pytest.approx(true[best] - PROBLEMS[problem_name].optimum, rel=1e-3)


def _check(space: dict[str, Param], config: dict[str, Any], reached: set) -> None:
    assert set(config) == set(space)
    for name, param in space.items():
        value = config[name]
        if isinstance(param, Float):
            assert isinstance(value, float) and param.low <= value <= param.high, (name, value)
        elif isinstance(param, Int):
            assert isinstance(value, int) and param.low <= value <= param.high, (name, value)
        elif isinstance(param, Cat):
            assert value in param.choices, (name, value)
            reached.add((name, value))
        else:
            assert isinstance(param, Cond) and value["name"] in param.branches, (name, value)
            reached.add((name, value["name"]))
            _check(param.branches[value["name"]], {k: v for k, v in value.items() if k != "name"}, reached)


def _every_choice(space: dict[str, Param]) -> set:
    out: set = set()
    for name, param in space.items():
        if isinstance(param, Cat):
            out |= {(name, c) for c in param.choices}
        elif isinstance(param, Cond):
            out |= {(name, b) for b in param.branches}
            for params in param.branches.values():
                out |= _every_choice(params)
    return out


def _asynctune_samples(space: dict[str, Param], n: int) -> list[dict]:
    sampler, rng = Space(asynctune_space(space)), np.random.default_rng(0)
    return [sampler.sample(rng) for _ in range(n)]


def _optuna_samples(space: dict[str, Param], n: int) -> list[dict]:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [optuna_config(study.ask(), space) for _ in range(n)]


def _hyperopt_samples(space: dict[str, Param], n: int) -> list[dict]:
    stochastic = pytest.importorskip("hyperopt.pyll.stochastic")
    expression, rng = hyperopt_space(space), np.random.default_rng(0)
    return [stochastic.sample(expression, rng=rng) for _ in range(n)]


SAMPLERS = {"asynctune": _asynctune_samples, "optuna": _optuna_samples, "hyperopt": _hyperopt_samples}


@pytest.mark.parametrize("library", SAMPLERS)
def test_each_library_samples_the_same_space_in_bounds_and_reaches_every_branch(library):
    for name, problem in PROBLEMS.items():
        reached: set = set()
        for config in SAMPLERS[library](problem.space, 60):
            _check(problem.space, config, reached)
            if problem.half != "extra":  # sgd_digits trains a model per evaluation
                problem.f(config)  # the objective takes every library's config as it is
        assert reached == _every_choice(problem.space), name


def test_gp_minimize_gets_the_same_bounds_and_refuses_a_conditional_space():
    skopt_space = pytest.importorskip("skopt.space")
    problem = PROBLEMS["mixed_interact"]
    dims = skopt_dimensions(problem.space)
    assert [(d.name, d.bounds) for d in dims] == [
        ("optimizer", tuple(problem.space["optimizer"].choices)), ("schedule", tuple(problem.space["schedule"].choices)),
        ("lr", (1e-5, 1.0)), ("dropout", (0.0, 0.8)), ("batch", (8, 512)), ("layers", (1, 8))]
    assert dims[2].prior == "log-uniform" and dims[4].prior == "log-uniform"
    assert isinstance(skopt_space.Space(dims).rvs(1, random_state=0)[0][4], (int, np.integer))
    with pytest.raises(ValueError, match="conditional parameter 'model'"):
        skopt_dimensions(PROBLEMS["cond_models"].space)


def test_tables_mark_losses_and_the_docs_markers_are_required():
    cache = {"p|TPESearch|0": {"best": [[1, 2.0], [10, 1.0]], "budget": 25, "cpu": 0.1},
             "p|optuna-tpe|0": {"best": [[1, 0.5]], "budget": 25, "cpu": 0.1}}
    table = regret_table(cache, ["p"], ["TPESearch", "optuna-tpe"], [5, 25], 1, markdown=True)
    assert "| p | 5 | 2 | 0.5 | **4.00** |" in table and "| p | 25 | 1 | 0.5 | **2.00** |" in table
    text = "a\n<!-- search_quality:tuning -->\nold\n<!-- /search_quality:tuning -->\nb"
    assert replace_between_markers(text, "tuning", "new") == \
        "a\n<!-- search_quality:tuning -->\nnew\n<!-- /search_quality:tuning -->\nb"
    with pytest.raises(ValueError, match="search_quality:heldout"):
        replace_between_markers(text, "heldout", "new")
    assert math.isfinite(regret_at(cache["p|TPESearch|0"], 9))


def test_the_ratio_interval_separates_a_shift_from_noise():
    rng = np.random.default_rng(1)
    same = ratio_interval(rng.lognormal(0, 1, 100), rng.lognormal(0, 1, 100))
    assert same[0] < 1.0 < same[1]  # the same distribution: a tie
    worse = ratio_interval(rng.lognormal(np.log(2.0), 0.3, 100), rng.lognormal(0, 0.3, 100))
    assert 1.0 < worse[0] < 2.0 < worse[1] < 3.0  # twice the regret: the whole interval above 1, around 2
