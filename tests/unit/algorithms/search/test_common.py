"""The contract every model-based searcher keeps: domains, conditional spaces, seeds, state,
results (intermediate, failed, NaN), modes, warm starts and errors before any trial starts."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from asynctune.algorithms import ConcurrencyLimiter, SkOptSearch, TPESearch
from asynctune.algorithms.base import Searcher
from asynctune.errors import SearchSpaceError
from asynctune.core.space import (
    Space, choice, grid_search, lograndint, loguniform, qloguniform, qrandint, qrandn, quniform, randint, randn,
    sample_from, uniform,
)

# Few startup trials, so that a short run spends most suggestions in the model. skopt maximises
# its acquisition over 1,000 sampled points (not 10,000, nor L-BFGS from restarts): these tests are
# about the space and the state, and a fourth of the CPU; test_skopt_search.py and
# test_accepted_options_work run skopt's defaults and acq_optimizer="lbfgs".
_CHEAP_ACQUISITION = {"acq_optimizer_kwargs": {"n_points": 1000}}
SEARCHERS: dict[str, Callable[..., Searcher]] = {
    "tpe": lambda **kw: TPESearch(n_startup_trials=3, **kw),
    "tpe-univariate": lambda **kw: TPESearch(n_startup_trials=3, multivariate=False, **kw),
    "skopt-gp": lambda **kw: SkOptSearch(n_initial_points=3, acq_optimizer="sampling", **_CHEAP_ACQUISITION, **kw),
    "skopt-rf": lambda **kw: SkOptSearch(n_initial_points=3, base_estimator="RF", **_CHEAP_ACQUISITION, **kw),
}
TPE_ONLY = {k: v for k, v in SEARCHERS.items() if k.startswith("tpe")}
FAST = {"tpe": SEARCHERS["tpe"], "skopt-rf": SEARCHERS["skopt-rf"]}

BOUNDED = {
    "uniform": uniform(-2.0, 3.0),
    "loguniform": loguniform(1e-4, 1e-1),
    "quniform": quniform(0.0, 1.0, 0.25),
    "qloguniform": qloguniform(1.0, 100.0, 5.0),
    "randint": randint(-3, 4),
    "lograndint": lograndint(1, 1000),
    "qrandint": qrandint(0, 20, 5),
    "choice": choice(["a", "b", "c"]),
    "constant": 7,
}
UNBOUNDED = {"randn": randn(1.0, 2.0), "qrandn": qrandn(0.0, 1.0, 0.5)}


def loss_of(config: dict[str, Any]) -> float:
    """Any deterministic function of the config (the same in every process: no hash())."""
    return float(sum(zlib.crc32(repr(v).encode()) % 1000 for v in config.values()) / 1000)


def drive(searcher: Searcher, space: dict[str, Any], n: int, objective: Callable[[dict], float] = loss_of,
          *, metric: str = "loss", mode: str = "min", start: int = 0) -> list[dict[str, Any]]:
    """Suggest -> evaluate -> complete, n times; returns the configs."""
    if searcher.space is None:
        searcher.set_search_properties(metric, mode, Space(space))
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"t{i}", {metric: objective(config)})
        configs.append(config)
    return configs


def check_in_domain(value: Any, domain_name: str) -> None:
    checks = {
        "uniform": lambda v: isinstance(v, float) and -2.0 <= v <= 3.0,
        "loguniform": lambda v: isinstance(v, float) and 1e-4 <= v <= 1e-1,
        "quniform": lambda v: v in (0.0, 0.25, 0.5, 0.75, 1.0),
        "qloguniform": lambda v: 1.0 <= v <= 100.0 and math.isclose(v / 5.0, round(v / 5.0)),
        "randint": lambda v: type(v) is int and -3 <= v <= 3,
        "lograndint": lambda v: type(v) is int and 1 <= v <= 999,
        "qrandint": lambda v: type(v) is int and v in (0, 5, 10, 15, 20),
        "choice": lambda v: v in ("a", "b", "c"),
        "constant": lambda v: v == 7,
        "randn": lambda v: isinstance(v, float) and math.isfinite(v),
        "qrandn": lambda v: isinstance(v, float) and math.isclose(v / 0.5, round(v / 0.5)),
    }
    assert checks[domain_name](value), f"{domain_name}: {value!r}"


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_every_domain_round_trips_inside_its_bounds(make: Callable[..., Searcher]) -> None:
    space = dict(BOUNDED)
    if not isinstance(make(), SkOptSearch):
        space.update(UNBOUNDED)
    configs = drive(make(seed=0), space, 12)
    for config in configs:
        assert set(config) == set(space)
        for name, value in config.items():
            check_in_domain(value, name)


def test_skopt_rejects_unbounded_domains_before_any_trial() -> None:
    with pytest.raises(SearchSpaceError, match=r"SkOptSearch does not support randn.*\['x'\]"):
        SkOptSearch(metric="loss", mode="min").set_search_properties(None, None, Space({"x": randn()}))


CONDITIONAL = {
    "model": choice([
        {"kind": "linear", "alpha": loguniform(1e-4, 1.0)},
        {"kind": "tree", "depth": randint(1, 9), "split": choice(["gini", "entropy"])},
        "none",
    ]),
    "lr": uniform(0.0, 1.0),
    "double_lr": sample_from(lambda config: config["lr"] * 2),
}


def conditional_loss(config: dict[str, Any]) -> float:
    model = config["model"]
    if model == "none":
        return 3.0
    if model["kind"] == "linear":
        return 1.0 + abs(math.log10(model["alpha"]) + 2) + config["lr"]
    return abs(model["depth"] - 6) * 0.1 + (model["split"] == "gini") + config["lr"]


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_conditional_space_has_exactly_the_chosen_branch(make: Callable[..., Searcher]) -> None:
    configs = drive(make(seed=1), CONDITIONAL, 15, conditional_loss)
    kinds = set()
    for config in configs:
        assert config["double_lr"] == config["lr"] * 2  # sample_from sees the proposed value
        model = config["model"]
        if model == "none":
            kinds.add("none")
            continue
        kinds.add(model["kind"])
        if model["kind"] == "linear":
            assert set(model) == {"kind", "alpha"} and 1e-4 <= model["alpha"] <= 1.0
        else:
            assert set(model) == {"kind", "depth", "split"} and 1 <= model["depth"] <= 8
    assert len(kinds) >= 2


@pytest.mark.parametrize("make", TPE_ONLY.values(), ids=TPE_ONLY.keys())
def test_tpe_learns_the_best_branch_of_a_conditional_space(make: Callable[..., Searcher]) -> None:
    configs = drive(make(seed=2), CONDITIONAL, 40, conditional_loss)
    late = [c["model"] for c in configs[20:]]
    trees = sum(1 for m in late if isinstance(m, dict) and m["kind"] == "tree")
    assert trees >= 12, late  # the tree branch reaches 0; the others cannot go below 1


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_same_seed_same_suggestions_other_seed_others(make: Callable[..., Searcher]) -> None:
    first = drive(make(seed=5), BOUNDED, 8)
    again = drive(make(seed=5), BOUNDED, 8)
    other = drive(make(seed=6), BOUNDED, 8)
    assert first == again
    assert first != other


def test_run_seed_is_used_when_the_searcher_has_none() -> None:
    a, b = TPESearch(), TPESearch()
    for searcher in (a, b):
        searcher.set_search_properties("loss", "min", Space(BOUNDED), seed=11)
    assert drive(a, BOUNDED, 6) == drive(b, BOUNDED, 6)


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_restored_searcher_continues_like_the_uninterrupted_one(make: Callable[..., Searcher], tmp_path) -> None:
    uninterrupted = make(seed=3)
    expected = drive(uninterrupted, BOUNDED, 10)

    first = make(seed=3)
    drive(first, BOUNDED, 5)
    first.save(str(tmp_path / "state"))
    restored = make(seed=3)
    restored.set_search_properties("loss", "min", Space(BOUNDED))
    restored.restore(str(tmp_path / "state"))
    assert drive(restored, BOUNDED, 5, start=5) == expected[5:]


def test_state_saved_with_a_running_trial_keeps_it(tmp_path) -> None:
    searcher = TPESearch(n_startup_trials=2, seed=0)
    drive(searcher, BOUNDED, 3)
    running = searcher.suggest("running")
    searcher.save(str(tmp_path / "state"))
    restored = TPESearch(n_startup_trials=2, seed=0)
    restored.set_search_properties("loss", "min", Space(BOUNDED))
    restored.restore(str(tmp_path / "state"))
    restored.on_trial_complete("running", {"loss": loss_of(running)})
    assert len(restored.observations) == 4


def test_state_with_lambdas_can_be_saved_and_restored(tmp_path) -> None:
    searcher = TPESearch(seed=0, gamma=lambda n: 2, n_startup_trials=2)
    drive(searcher, CONDITIONAL, 3, conditional_loss)
    searcher.save(str(tmp_path / "state"))  # the space (with its lambda) is not part of the state
    restored = TPESearch()
    restored.set_search_properties("loss", "min", Space(CONDITIONAL))
    restored.restore(str(tmp_path / "state"))
    assert restored.gamma(10) == 2 and len(restored.observations) == 3


@pytest.mark.parametrize("make", FAST.values(), ids=FAST.keys())
def test_mode_max_is_mode_min_of_the_negated_metric(make: Callable[..., Searcher]) -> None:
    minimised = drive(make(seed=4), BOUNDED, 8, loss_of, mode="min")
    maximised = drive(make(seed=4), BOUNDED, 8, lambda c: -loss_of(c), mode="max", metric="score")
    assert minimised == maximised


@pytest.mark.parametrize("make", FAST.values(), ids=FAST.keys())
def test_errors_are_ignored_and_nan_counts_as_worst(make: Callable[..., Searcher]) -> None:
    searcher = make(seed=0)
    searcher.set_search_properties("loss", "min", Space(BOUNDED))
    for i, result in enumerate([{"loss": 1.0}, {"loss": float("nan")}, {"loss": float("inf")}, {"loss": 0.5}]):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", result)
    searcher.suggest("failed")
    searcher.on_trial_complete("failed", {"loss": -100.0}, error=True)
    searcher.suggest("silent")
    searcher.on_trial_complete("silent", {"other": 1.0})
    assert [loss for _, loss in searcher.observations] == [1.0, math.inf, math.inf, 0.5]
    assert isinstance(searcher.suggest("next"), dict)  # the model copes with the infinite losses


def test_skopt_with_only_nan_results_still_suggests() -> None:
    searcher = SkOptSearch(n_initial_points=2, base_estimator="ET", seed=0)
    configs = drive(searcher, BOUNDED, 5, lambda c: float("nan"))
    assert len({c["uniform"] for c in configs}) == 5


@pytest.mark.parametrize("make", FAST.values(), ids=FAST.keys())
def test_intermediate_results_stand_in_for_a_final_result_without_the_metric(make: Callable[..., Searcher]) -> None:
    searcher = make(seed=0)
    searcher.set_search_properties("acc", "max", Space(BOUNDED))
    searcher.suggest("a")
    searcher.on_trial_result("a", {"acc": 0.2, "training_iteration": 1})
    searcher.on_trial_result("a", {"acc": 0.7, "training_iteration": 2})
    searcher.on_trial_complete("a", {"training_iteration": 2})
    searcher.suggest("b")
    searcher.on_trial_result("b", {"acc": 0.3})
    searcher.on_trial_complete("b", {"acc": 0.9})  # the final result wins over the latest
    assert [loss for _, loss in searcher.observations] == [-0.7, -0.9]


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_points_to_evaluate_come_first_and_are_completed(make: Callable[..., Searcher]) -> None:
    points = [{"lr": 0.5, "model": {"kind": "tree", "depth": 3}}, {"model": "none"}]
    searcher = make(seed=0, points_to_evaluate=points)
    first, second, *_ = drive(searcher, CONDITIONAL, 4, conditional_loss)
    assert first["lr"] == 0.5 and first["model"]["kind"] == "tree" and first["model"]["depth"] == 3
    assert first["model"]["split"] in ("gini", "entropy")  # left out: drawn from the prior
    assert second["model"] == "none" and 0 <= second["lr"] <= 1


@pytest.mark.parametrize("point, message", [
    ({"lr": 2.0}, r"points_to_evaluate value 2.0 at config\['lr'\] is not a number in \[0.0, 1.0\]"),
    ({"model": "forest"}, r"'forest' at config\['model'\] is none of the categories"),
    ({"model": {"kind": "tree", "depth": 2.5}}, r"value 2.5 at config\['model'\]<choice 1>\['depth'\] is not an integer"),
    ({"lr": 0.5, "LR": 0.5}, r"points_to_evaluate\[0\] sets config\['LR'\], which is not in the search space"),
], ids=["out-of-bounds", "unknown-category", "integer-with-a-fraction", "misspelt-key"])
def test_bad_points_to_evaluate_fail_before_any_trial(point: dict, message: str) -> None:
    searcher = TPESearch(points_to_evaluate=[point])
    with pytest.raises(ValueError, match=message):
        searcher.set_search_properties("loss", "min", Space(CONDITIONAL))


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
@pytest.mark.parametrize("metric, mode, missing", [(None, "min", "metric"), ("loss", None, "mode")],
                         ids=["no-metric", "no-mode"])
def test_missing_metric_or_mode_is_a_clear_error(make: Callable[..., Searcher], metric, mode, missing) -> None:
    with pytest.raises(ValueError, match=f"{missing} is not set; pass {missing}= here or to run()"):
        make().set_search_properties(metric, mode, Space(BOUNDED))


@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_grid_search_is_rejected(make: Callable[..., Searcher]) -> None:
    with pytest.raises(SearchSpaceError, match=r"does not support grid_search \(.*config\['x'\]\)"):
        make(metric="loss", mode="min").set_search_properties(None, None, Space({"x": grid_search([1, 2])}))


def test_own_metric_and_mode_win_over_runs() -> None:
    searcher = TPESearch(metric="acc", mode="max")
    searcher.set_search_properties("loss", "min", Space(BOUNDED))
    assert (searcher.metric, searcher.mode) == ("acc", "max")


# --- ConcurrencyLimiter -------------------------------------------------------------------------

def test_limiter_says_not_now_at_the_cap_and_resumes_when_a_trial_ends() -> None:
    limiter = ConcurrencyLimiter(TPESearch(seed=0), max_concurrent=2)
    limiter.set_search_properties("loss", "min", Space(BOUNDED))
    assert isinstance(limiter.suggest("a"), dict)
    assert isinstance(limiter.suggest("b"), dict)
    assert limiter.suggest("c") is None
    limiter.on_trial_complete("a", {"loss": 1.0}, error=True)  # an error frees the slot too
    assert isinstance(limiter.suggest("c"), dict)
    assert limiter.suggest("d") is None
    assert limiter.metric == "loss" and limiter.mode == "min" and limiter.space is not None


def test_limiter_in_batches_waits_for_the_whole_batch_and_tells_its_ends_together(tmp_path) -> None:
    # Ray's ConcurrencyLimiter(batch=True); before, asynctune's took no batch argument.
    inner = TPESearch(n_startup_trials=2, seed=0)
    limiter = ConcurrencyLimiter(inner, max_concurrent=2, batch=True)
    limiter.set_search_properties("loss", "min", Space(BOUNDED))
    assert isinstance(limiter.suggest("a"), dict) and isinstance(limiter.suggest("b"), dict)
    assert limiter.suggest("c") is None
    limiter.on_trial_complete("a", {"loss": 1.0})
    assert limiter.suggest("c") is None and inner.observations == []  # the batch has not ended
    limiter.save(str(tmp_path / "state"))
    restored = ConcurrencyLimiter(TPESearch(n_startup_trials=2, seed=0), max_concurrent=2, batch=True)
    restored.set_search_properties("loss", "min", Space(BOUNDED))
    restored.restore(str(tmp_path / "state"))
    for searcher, model in ((limiter, inner), (restored, restored.searcher)):
        searcher.on_trial_complete("b", None, error=True)
        assert [loss for _, loss in model.observations] == [1.0]  # both ends told; the failed one is ignored
        assert isinstance(searcher.suggest("c"), dict) and isinstance(searcher.suggest("d"), dict)
        assert searcher.suggest("e") is None
    with pytest.raises(ValueError, match="batch must be True or False, got batch=1"):
        ConcurrencyLimiter(inner, 2, batch=1)


@pytest.mark.parametrize("inner, slow", [(TPESearch, False), (SkOptSearch, True)], ids=["tpe", "skopt"])
def test_limiter_is_as_slow_as_its_searcher(inner: type[Searcher], slow: bool) -> None:
    assert ConcurrencyLimiter(inner(), 1).slow is slow
    assert inner.slow is slow


def test_limiter_state_round_trips(tmp_path) -> None:
    def make() -> ConcurrencyLimiter:
        return ConcurrencyLimiter(TPESearch(n_startup_trials=2, seed=0), max_concurrent=2)

    limiter = make()
    drive(limiter, BOUNDED, 4)
    limiter.suggest("running")
    limiter.save(str(tmp_path / "state"))
    expected = limiter.suggest("next")

    restored = make()
    restored.set_search_properties("loss", "min", Space(BOUNDED))
    restored.restore(str(tmp_path / "state"))
    assert restored.live == {"running"}
    assert restored.suggest("next") == expected
    assert restored.suggest("third") is None
    assert list(tmp_path.iterdir()) == [tmp_path / "state"]  # no temporary files left behind


# --- constructor arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: TPESearch(n_startup_trials=-1), "n_startup_trials must be an integer >= 0"),
    (lambda: TPESearch(n_ei_candidates=0), "n_ei_candidates must be an integer >= 1"),
    (lambda: TPESearch(gamma=1.5), "gamma must be a float in"),
    (lambda: TPESearch(prior_weight=0), "prior_weight must be a number > 0"),
    (lambda: TPESearch(mode="best"), "mode must be 'min' or 'max'"),
    (lambda: TPESearch(seed=1.5), "seed must be an integer or None"),
    (lambda: TPESearch(points_to_evaluate={"x": 1}), "points_to_evaluate must be a list of dicts"),
    (lambda: SkOptSearch(base_estimator="SVM"), "base_estimator must be one of"),
    (lambda: SkOptSearch(acq_func="EIps"), "acq_func must be one of"),
    (lambda: SkOptSearch(acq_optimizer="adam"), "acq_optimizer must be 'auto', 'lbfgs' or 'sampling'"),
    (lambda: SkOptSearch(base_estimator="RF", acq_optimizer="lbfgs"), "acq_optimizer='lbfgs' needs"),
    (lambda: SkOptSearch(liar_strategy="cl_median"), "liar_strategy must be one of"),
    (lambda: SkOptSearch(n_initial_points=-1), "n_initial_points must be an integer >= 0"),
    (lambda: ConcurrencyLimiter(TPESearch(), 0), "max_concurrent must be an integer >= 1"),
    (lambda: ConcurrencyLimiter(object(), 1), "searcher must be a Searcher"),  # type: ignore[arg-type]
], ids=["tpe-startup", "tpe-candidates", "tpe-gamma", "tpe-prior", "tpe-mode", "tpe-seed", "tpe-points",
        "skopt-estimator", "skopt-acq", "skopt-optimizer", "skopt-lbfgs-rf", "skopt-liar", "skopt-initial",
        "limiter-cap", "limiter-searcher"])
def test_bad_arguments_are_rejected_with_their_name(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make", [
    lambda: TPESearch(gamma=0.25, n_ei_candidates=1, prior_weight=2.0, n_startup_trials=0),
    lambda: TPESearch(gamma=lambda n: 2, multivariate=False, constant_liar=True),
    lambda: SkOptSearch(base_estimator="gbrt", acq_func="LCB", liar_strategy="cl_max", n_initial_points=2),
    lambda: SkOptSearch(base_estimator="ET", acq_func="PI", acq_optimizer="sampling", n_initial_points=2),
    lambda: SkOptSearch(acq_func="gp_hedge", acq_optimizer="lbfgs", n_initial_points=2,
                        acq_optimizer_kwargs={"n_points": 500, "n_restarts_optimizer": 1}),
], ids=["tpe-options", "tpe-gamma-function", "skopt-gbrt", "skopt-et", "skopt-gp-hedge"])
def test_accepted_options_work(make: Callable[[], Searcher]) -> None:
    configs = drive(make(), {"x": uniform(0.0, 1.0), "c": choice([1, 2])}, 5, lambda c: (c["x"] - 0.2) ** 2)
    assert all(0.0 <= c["x"] <= 1.0 and c["c"] in (1, 2) for c in configs)


def test_suggest_before_set_search_properties_says_so() -> None:
    with pytest.raises(RuntimeError, match="before set_search_properties"):
        TPESearch().suggest("a")


def test_values_are_plain_python_numbers() -> None:
    config = drive(TPESearch(n_startup_trials=0, seed=0), BOUNDED, 1)[0]
    assert not any(isinstance(v, np.generic) for v in config.values())


@pytest.mark.parametrize("make", FAST.values(), ids=FAST.keys())
def test_searcher_pickles_with_its_space_for_run_spec(make: Callable[..., Searcher]) -> None:
    import cloudpickle

    searcher = make(seed=0)
    drive(searcher, CONDITIONAL, 4, conditional_loss)
    copy = cloudpickle.loads(cloudpickle.dumps(searcher))  # run() keeps its arguments this way
    assert drive(copy, CONDITIONAL, 3, conditional_loss, start=4) == drive(searcher, CONDITIONAL, 3, conditional_loss,
                                                                          start=4)
