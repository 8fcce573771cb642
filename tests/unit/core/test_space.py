"""The search-space DSL: every domain, seeding, grid x num_samples, sample_from, errors."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

import asynctune as at
from asynctune.algorithms.search.basic import BasicVariantSearch
from asynctune.core.space import Space, resolved_items

DOMAINS = {
    "uniform": (lambda: at.uniform(-2, 3), lambda v: isinstance(v, float) and -2 <= v <= 3),
    "loguniform": (lambda: at.loguniform(1e-4, 1e-1), lambda v: 1e-4 <= v <= 1e-1),
    "quniform": (lambda: at.quniform(0, 1, 0.25), lambda v: v in (0, 0.25, 0.5, 0.75, 1.0)),
    "qloguniform": (lambda: at.qloguniform(1, 1000, 5), lambda v: 1 <= v <= 1000 and math.isclose(v % 5, 0, abs_tol=1e-9)),
    "randint": (lambda: at.randint(0, 3), lambda v: isinstance(v, int) and v in (0, 1, 2)),
    "lograndint": (lambda: at.lograndint(1, 100), lambda v: isinstance(v, int) and 1 <= v < 100),
    "qrandint": (lambda: at.qrandint(0, 20, 5), lambda v: isinstance(v, int) and v in (0, 5, 10, 15, 20)),
    "randn": (lambda: at.randn(10, 0.1), lambda v: isinstance(v, float) and 9 < v < 11),
    "qrandn": (lambda: at.qrandn(0, 5, 2), lambda v: v % 2 == 0),
    "choice": (lambda: at.choice(["a", "b", 3]), lambda v: v in ("a", "b", 3)),
}


@pytest.mark.parametrize("name", DOMAINS, ids=list(DOMAINS))
def test_every_domain_samples_inside_its_bounds(name):
    make, valid = DOMAINS[name]
    space = Space({"x": make()})
    rng = np.random.default_rng(0)
    values = [space.sample(rng)["x"] for _ in range(300)]
    assert all(valid(v) for v in values), values[:10]
    assert len(set(values)) > 1


def test_randint_excludes_high_and_qrandint_includes_it():
    rng = np.random.default_rng(1)
    assert set(Space({"x": at.randint(0, 3)}).sample(rng)["x"] for _ in range(200)) == {0, 1, 2}
    assert set(Space({"x": at.qrandint(0, 4, 2)}).sample(rng)["x"] for _ in range(200)) == {0, 2, 4}


def test_loguniform_is_uniform_in_log_space():
    space = Space({"x": at.loguniform(1e-4, 1)})
    rng = np.random.default_rng(2)
    values = np.array([space.sample(rng)["x"] for _ in range(4000)])
    # Half the mass lies below the geometric mean 1e-2, not below the arithmetic mean 0.5.
    assert 0.45 < np.mean(values < 1e-2) < 0.55


def test_choice_is_uniform():
    space = Space({"x": at.choice(["a", "b", "c", "d"])})
    rng = np.random.default_rng(3)
    counts = Counter(space.sample(rng)["x"] for _ in range(4000))
    assert all(900 < c < 1100 for c in counts.values()), counts


def test_nested_dicts_lists_and_constants():
    space = Space({"model": {"layers": [at.randint(1, 4), 64], "act": "relu"}, "lr": at.uniform(0, 1)})
    config = space.sample(np.random.default_rng(0))
    assert config["model"]["act"] == "relu" and config["model"]["layers"][1] == 64
    assert config["model"]["layers"][0] in (1, 2, 3)


def test_conditional_choice_of_dicts():
    space = Space({"opt": at.choice([{"name": "sgd", "momentum": at.uniform(0.5, 0.9)}, {"name": "adam"}])})
    names = [p.name for p in space.parameters]
    assert any("momentum" in n for n in names)
    conditional = [p for p in space.parameters if p.condition is not None]
    assert conditional[0].condition == (("opt",), 0)
    rng = np.random.default_rng(0)
    seen = {"sgd": 0, "adam": 0}
    for _ in range(100):
        opt = space.sample(rng)["opt"]
        seen[opt["name"]] += 1
        if opt["name"] == "sgd":
            assert 0.5 <= opt["momentum"] <= 0.9
        else:
            assert "momentum" not in opt
    assert seen["sgd"] and seen["adam"]


def test_fixed_values_override_sampling():
    space = Space({"opt": at.choice([{"m": at.uniform(0, 1)}, "plain"]), "lr": at.uniform(0, 1)})
    from asynctune.core.space import Branch
    config = space.sample(np.random.default_rng(0), {("opt",): 0, ("opt", Branch(0), "m"): 0.25, ("lr",): 0.5})
    assert config == {"opt": {"m": 0.25}, "lr": 0.5}


def test_sample_from_reads_other_values_in_any_order():
    space = Space({
        "wd": at.sample_from(lambda c: c["lr"] / 10),
        "lr": at.sample_from(lambda c: c["base"] * 2),
        "base": at.uniform(1, 2),
        "nested": {"double_wd": at.sample_from(lambda spec: spec.config.wd * 2)},
    })
    config = space.sample(np.random.default_rng(0))
    assert config["lr"] == pytest.approx(config["base"] * 2)
    assert config["wd"] == pytest.approx(config["lr"] / 10)
    assert config["nested"]["double_wd"] == pytest.approx(config["wd"] * 2)


def test_sample_from_may_return_a_domain():
    space = Space({"hi": 5, "x": at.sample_from(lambda c: at.randint(0, c["hi"]))})
    values = {space.sample(np.random.default_rng(i))["x"] for i in range(50)}
    assert values <= set(range(5)) and len(values) > 1


def test_sample_from_cycle_is_an_error_naming_the_keys():
    with pytest.raises(at.SearchSpaceError, match=r"cycle: config\['a'\] -> config\['b'\] -> config\['a'\]"):
        Space({"a": at.sample_from(lambda c: c["b"]), "b": at.sample_from(lambda c: c["a"])})


def test_sample_from_missing_key_names_the_key():
    with pytest.raises(at.SearchSpaceError, match=r"config\['x'\].*KeyError.*nope"):
        Space({"x": at.sample_from(lambda c: c["nope"])})


INVALID = {
    "uniform low>=high": (lambda: at.uniform(2, 1), "low must be less than high"),
    "uniform equal": (lambda: at.uniform(1, 1), "low must be less than high"),
    "uniform range overflows": (lambda: at.uniform(-1e308, 1e308), "range is too wide"),
    "loguniform zero": (lambda: at.loguniform(0, 1), "log-scale domain needs low > 0"),
    "loguniform negative": (lambda: at.loguniform(-1, 1), "log-scale"),
    "quniform q<=0": (lambda: at.quniform(0, 1, 0), "q must be > 0"),
    "randint empty": (lambda: at.randint(3, 3), "range is empty"),
    "randint float": (lambda: at.randint(0, 2.5), "must be an integer"),
    "randn sd<=0": (lambda: at.randn(0, 0), "sd must be > 0"),
    "choice empty": (lambda: at.choice([]), "at least one"),
    "choice not a list": (lambda: at.choice("abc"), "must be a list"),
    "grid empty": (lambda: at.grid_search([]), "at least one"),
    "uniform nan": (lambda: at.uniform(float("nan"), 1), "finite number"),
    "sample_from not callable": (lambda: at.sample_from(3), "callable"),
}


@pytest.mark.parametrize("name", INVALID, ids=list(INVALID))
def test_invalid_domains_fail_when_built(name):
    make, message = INVALID[name]
    with pytest.raises(at.SearchSpaceError, match=message):
        make()


def test_grid_inside_choice_is_rejected_with_the_key():
    with pytest.raises(at.SearchSpaceError, match=r"config\['a'\].*grid_search cannot sit inside a choice"):
        Space({"a": at.choice([{"b": at.grid_search([1, 2])}])})


def test_space_must_be_a_dict():
    with pytest.raises(at.SearchSpaceError, match="must be a dict"):
        Space([1, 2])


def _suggest_all(space, num_samples, seed):
    searcher = BasicVariantSearch(seed=seed)
    searcher.set_search_properties(None, None, Space(space))
    total = searcher.max_trials(num_samples)
    configs = [searcher.suggest(str(i)) for i in range(total)]
    assert searcher.suggest("extra") is at.FINISHED
    return configs


def test_grid_times_num_samples_repeats_the_whole_grid():
    space = {"a": at.grid_search([1, 2, 3]), "b": at.grid_search(["x", "y"]), "lr": at.uniform(0, 1)}
    configs = _suggest_all(space, num_samples=4, seed=0)
    assert len(configs) == 3 * 2 * 4
    combos = Counter((c["a"], c["b"]) for c in configs)
    assert set(combos.values()) == {4} and len(combos) == 6
    assert len({c["lr"] for c in configs}) == 24  # random domains are drawn anew each time


def test_same_seed_same_configs_other_seed_other_configs():
    space = {"lr": at.loguniform(1e-4, 1), "n": at.randint(0, 1000), "g": at.grid_search([1, 2])}
    assert _suggest_all(space, 5, seed=7) == _suggest_all(space, 5, seed=7)
    assert _suggest_all(space, 5, seed=7) != _suggest_all(space, 5, seed=8)


def test_points_to_evaluate_come_first_and_fill_missing_keys():
    searcher = BasicVariantSearch(points_to_evaluate=[{"lr": 0.5}], seed=0)
    searcher.set_search_properties(None, None, Space({"lr": at.uniform(0, 1), "n": at.randint(0, 5)}))
    assert searcher.max_trials(2) == 3
    first = searcher.suggest("0")
    assert first["lr"] == 0.5 and first["n"] in range(5)


def test_a_partial_point_fills_the_branch_it_names_and_sample_from_reads_its_values():
    # Before, the point's branch was laid over whatever branch was drawn: {"name": "sgd"} came out
    # without its momentum (or with adam's beta), and x was computed from the grid's first value.
    space = Space({"opt": at.choice([{"name": "sgd", "momentum": at.uniform(0, 1)},
                                     {"name": "adam", "beta": at.uniform(0.8, 0.99)}, "none"]),
                   "g": at.grid_search([1, 2]), "x": at.sample_from(lambda config: config["g"] * 10)})
    for seed in range(10):
        searcher = BasicVariantSearch(points_to_evaluate=[{"opt": {"name": "sgd"}}, {"g": 2}], seed=seed)
        searcher.set_search_properties(None, None, space)
        searcher.max_trials(1)
        sgd, two = searcher.suggest("0"), searcher.suggest("1")
        assert set(sgd["opt"]) == {"name", "momentum"} and sgd["opt"]["name"] == "sgd"
        assert two["g"] == 2 and two["x"] == 20


def test_categories_are_copied_not_shared():
    space = Space({"x": at.choice([[1, 2]])})
    a, b = space.sample(np.random.default_rng(0)), space.sample(np.random.default_rng(0))
    a["x"].append(3)
    assert b["x"] == [1, 2]


def test_resolved_items_lists_sampled_values_only():
    space = Space({"lr": at.uniform(0, 1), "const": 3, "g": at.grid_search([1])})
    config = space.sample(np.random.default_rng(0), {("g",): 1})
    assert set(resolved_items(config, space)) == {"lr", "g"}


@pytest.mark.parametrize("make, message", [
    (lambda: at.quniform(0.1, 0.2, 0.25), r"quniform\(low=0.1, high=0.2, q=0.25\): no multiple of q lies in \[low, high\]"),
    (lambda: at.qloguniform(1, 10, 20), r"qloguniform\(low=1, high=10, q=20\): no multiple of q"),
    (lambda: at.quniform(0, 1, "0.1"), r"q must be a finite number, got '0.1'"),
    (lambda: at.qrandn(0, 1, 0), r"qrandn\(mean=0, sd=1, q=0\): q must be > 0"),
    (lambda: at.qlograndint(0, 64, 8), r"qlograndint\(low=0, high=64, q=8\): a log-scale domain needs low > 0"),
    (lambda: at.lograndint(1, 64, base=1), r"lograndint\(low=1, high=64\): base must be > 1"),
], ids=["quniform", "qloguniform", "q-not-a-number", "qrandn", "qlograndint-log", "lograndint-base"])
def test_quantized_domains_that_cannot_hold_a_value_fail_where_written(make, message):
    # Before: quniform(0.1, 0.2, 0.25) sampled 0.25 and qloguniform(1, 10, 20) sampled 20.0, every
    # time, outside the bounds the user wrote.
    with pytest.raises(at.SearchSpaceError, match=message):
        make()


def test_quantized_floats_stay_on_the_grid_inside_odd_bounds():
    rng = np.random.default_rng(0)
    assert {at.quniform(0.1, 1.0, 0.25).sample(rng) for _ in range(400)} == {0.25, 0.5, 0.75, 1.0}
    assert {at.quniform(-1, -0.5, 0.25).sample(rng) for _ in range(400)} == {-1.0, -0.75, -0.5}


def test_qlograndint_is_rays_log_scale_multiple_of_q_with_high_included():
    domain = at.qlograndint(8, 64, 8)
    values = [domain.sample(np.random.default_rng(seed)) for seed in range(400)]
    assert set(values) == {8, 16, 24, 32, 40, 48, 56, 64}
    assert all(type(v) is int for v in values)
    counts = Counter(values)
    assert counts[8] > counts[64]  # a log scale: small values are drawn more often than large ones


def test_choice_and_grid_of_numpy_arrays_give_plain_python_numbers():
    # Ray takes tune.grid_search(np.linspace(...)) and tune.choice(np.arange(...)); before, both
    # were refused ("must be a list"), and a list of numpy scalars leaked np.int64 into configs.
    space = Space({"lr": at.grid_search(np.linspace(0.0, 1.0, 3)), "bs": at.choice(np.array([16, 32])),
                   "k": at.choice([np.int64(3), np.float32(0.5)])})
    assert [p[("lr",)] for p in space.grid_points()] == [0.0, 0.5, 1.0]
    rng = np.random.default_rng(0)
    for point in space.grid_points():
        config = space.sample(rng, point)
        assert type(config["lr"]) is float and type(config["bs"]) is int and type(config["k"]) in (int, float)
    with pytest.raises(at.SearchSpaceError, match="must be a list"):
        at.choice(np.zeros((2, 2)))


def test_domains_inside_grid_values_are_drawn_not_passed_on():
    # Before, the trainable received the Domain object itself: {"opt": uniform(0.0, 1.0)}.
    space = Space({"opt": at.grid_search([{"name": "sgd", "lr": at.loguniform(1e-3, 1e-1)}, at.randint(5, 8), "adam"])})
    rng = np.random.default_rng(0)
    sgd, number, adam = (space.sample(rng, point)["opt"] for point in space.grid_points())
    assert sgd["name"] == "sgd" and type(sgd["lr"]) is float and 1e-3 <= sgd["lr"] <= 1e-1
    assert type(number) is int and 5 <= number < 8
    assert adam == "adam"


def test_trials_do_not_share_a_grid_value_they_could_mutate():
    space = Space({"layers": at.grid_search([[64, 64]])})
    point = space.grid_points()[0]
    first, second = (space.sample(np.random.default_rng(0), point) for _ in range(2))
    first["layers"].append(1)
    assert second["layers"] == [64, 64] and space.grid_points()[0][("layers",)] == [64, 64]


def test_sample_from_returning_part_of_the_config_gives_plain_data():
    # Before, config["copy"] was the internal read-only view (not JSON, holding the sampler's state).
    space = Space({"model": {"width": at.randint(8, 64), "layers": [1, 2]},
                   "copy": at.sample_from(lambda config: config["model"]),
                   "nested": at.sample_from(lambda config: {"all": [config["model"]["layers"], np.int64(3)]})})
    config = space.sample(np.random.default_rng(0))
    assert json.loads(json.dumps(config)) == config
    assert config["copy"] == config["model"] and type(config["copy"]) is dict
    assert config["nested"] == {"all": [[1, 2], 3]} and type(config["nested"]["all"][1]) is int
    config["copy"]["layers"].append(3)
    assert config["model"]["layers"] == [1, 2]


def test_sample_from_reads_rays_spec_config_both_ways():
    # Ray passes a spec: spec.config.lr worked, spec["config"]["lr"] raised KeyError: 'config'.
    space = Space({"lr": at.uniform(0, 1), "wd": at.sample_from(lambda spec: spec["config"]["lr"] / 10),
                   "wd2": at.sample_from(lambda spec: spec.config.lr / 10)})
    config = space.sample(np.random.default_rng(0))
    assert config["wd"] == config["wd2"] == config["lr"] / 10
    own = Space({"config": {"a": 1}, "b": at.sample_from(lambda c: c["config"]["a"] + 1)})  # a key named config
    assert own.sample(np.random.default_rng(0))["b"] == 2


def test_a_domain_function_left_uncalled_is_named():
    # Before, the function itself reached the trainable as a constant.
    with pytest.raises(at.SearchSpaceError, match=r"config\['opt'\]\['lr'\] is the function loguniform itself, "
                                                  r"not a domain; call it: loguniform\(...\)"):
        Space({"opt": {"lr": at.loguniform}})
    assert Space({"fn": len, "cls": dict}).sample(np.random.default_rng(0)) == {"fn": len, "cls": dict}


@pytest.mark.parametrize("make, message", [
    (lambda: at.randint(0, 10.0), r"randint\(low=0, high=10.0\): high must be an integer, got 10.0"),
    (lambda: at.lograndint(1, "5"), r"lograndint\(low=1, high='5'\): high must be an integer, got '5'"),
    (lambda: at.loguniform(1, 10, base="e"), r"loguniform\(low=1, high=10\): base must be a finite number, got 'e'"),
    (lambda: at.randint(0, 2**70), r"randint\(low=0, high=1180591620717411303424\): the bounds must fit in 64-bit"),
], ids=["randint-float-high", "lograndint-str-high", "loguniform-str-base", "randint-beyond-int64"])
def test_bad_bounds_are_named_as_written(make, message):
    # Before: "got 9.0" (high - 1), a TypeError from the arithmetic for a str, numpy's "high is out
    # of bounds for int64" when run() started.
    with pytest.raises(at.SearchSpaceError, match=message):
        make()


def test_a_grid_of_a_million_points_is_never_held_in_memory():
    # Before, checking the space and every suggestion built the list of all grid points: 10**6
    # dicts (hundreds of MB, a second each); a grid of 10**8 did not start at all.
    import tracemalloc

    space_config = {f"k{i}": at.grid_search(list(range(10))) for i in range(6)}
    tracemalloc.start()
    try:
        searcher = BasicVariantSearch(seed=0)
        searcher.set_search_properties(None, None, Space(space_config))
        assert searcher.max_trials(1) == 10**6
        configs = [searcher.suggest(str(i)) for i in range(3)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert configs[2] == {"k0": 0, "k1": 0, "k2": 0, "k3": 0, "k4": 0, "k5": 2}
    assert peak < 5_000_000


def test_sample_from_returning_a_grid_is_named():
    # Before: "grid_search value not given; use Space.grid_points()", about an internal call.
    with pytest.raises(at.SearchSpaceError, match=r"config\['x'\]: sample_from returned grid_search\(\[1, 2\]\); a "
                                                  r"grid_search must be written in the config itself"):
        Space({"x": at.sample_from(lambda config: at.grid_search([1, 2]))})
