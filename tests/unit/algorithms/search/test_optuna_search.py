"""OptunaSearch: Optuna's samplers as asynctune searchers, in real runs with worker processes;
and the Searcher hook that tells a searcher a trial was stopped early (pruned)."""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import cloudpickle
import pytest

import asynctune as at
from tests.helpers.driver_runs import wait_for_results
from asynctune.algorithms import ASHAScheduler, ConcurrencyLimiter, RandomSearch
from asynctune.algorithms.search.optuna_search import OptunaSearch
from asynctune.errors import SearchSpaceError
from asynctune.core.space import Space
from tests.helpers.paths import REPO_ROOT

# Workers cannot import this test module: send its trainables by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def optuna():
    return pytest.importorskip("optuna")


def quadratic(config: dict) -> None:
    at.report(loss=(config["x"] - 0.3) ** 2 + (config["y"] + 1) ** 2)


def learning_curve(config: dict) -> None:
    """9 steps; a better x gives a lower loss at every step (what ASHA prunes on)."""
    for step in range(1, 10):
        at.report(loss=(config["x"] - 0.3) ** 2 + 1.0 / step)


def _searcher(space: dict, searcher: OptunaSearch, metric: Any = "loss", mode: Any = "min",
              seed: int | None = None) -> OptunaSearch:
    searcher.set_search_properties(metric, mode, Space(space), seed=seed)
    return searcher


# --- arguments and the optional dependency ------------------------------------------------------

def test_without_optuna_the_error_names_the_extra(tmp_path) -> None:
    script = textwrap.dedent("""
        import sys
        sys.modules["optuna"] = None  # as if it were not installed
        import asynctune
        from asynctune.algorithms import OptunaSearch  # importing asynctune never needs optuna
        try:
            OptunaSearch()
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert 'pip install "asynctune[optuna]"' in out.stdout


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": "bayes"}, "sampler must be"),
    ({"sampler": 3}, "sampler must be"),
    ({"mode": "minimize"}, "mode must be 'min' or 'max'"),
    ({"metric": ["a", "b"], "mode": ["min"]}, "one mode per metric"),
    ({"metric": ["a", "a"], "mode": ["min", "min"]}, "repeated"),
    ({"metric": []}, "non-empty list"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"space": {"x": 1}}, "define-by-run function"),
    ({"sampler": "tpe", "sampler_kwargs": {"n_startup_trials": 3}}, None),
], ids=["unknown-name", "not-a-sampler", "mode", "mode-count", "repeated-metric", "no-metric", "seed", "space",
        "named-with-kwargs"])
def test_arguments_are_checked(optuna, kwargs, message) -> None:
    if message is None:
        OptunaSearch(**kwargs)
        return
    with pytest.raises(ValueError, match=message):
        OptunaSearch(**kwargs)


def test_a_sampler_instance_keeps_its_own_seed(optuna) -> None:
    with pytest.raises(ValueError, match=r"TPESampler\(seed=...\)"):
        OptunaSearch(sampler=optuna.samplers.TPESampler(), seed=0)
    with pytest.raises(ValueError, match="sampler_kwargs"):
        OptunaSearch(sampler=optuna.samplers.TPESampler(), sampler_kwargs={"n_startup_trials": 2})


def test_metric_and_mode_come_from_run_or_fail_before_any_trial(optuna, storage) -> None:
    with pytest.raises(ValueError, match="metric is not set"):
        at.run(quadratic, config={"x": at.uniform(0, 1), "y": 0.0}, num_samples=2, search_alg=OptunaSearch(),
               storage_path=storage, verbose=0)
    assert not os.path.exists(storage) or not any(
        name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


# --- the search space -----------------------------------------------------------------------------

def test_dsl_domains_map_to_optuna_distributions(optuna) -> None:
    dist = optuna.distributions
    space = {
        "lr": at.loguniform(1e-4, 1e-1), "wd": at.uniform(0.0, 0.5), "units": at.randint(16, 257),
        "heads": at.lograndint(1, 65), "batch": at.qrandint(8, 100, 8), "drop": at.quniform(0.05, 0.52, 0.1),
        "eps": at.qloguniform(1e-3, 1.0, 1e-3), "act": at.choice(["relu", "tanh", None]),
        "mixed": at.choice([1, True, "1"]), "seed": 7,
    }
    searcher = _searcher(space, OptunaSearch(seed=0))
    configs = [searcher.suggest(f"trial_{i:05d}") for i in range(30)]
    trial = searcher.study.trials[0]
    assert trial.distributions == {
        "lr": dist.FloatDistribution(1e-4, 1e-1, log=True),
        "wd": dist.FloatDistribution(0.0, 0.5),
        "units": dist.IntDistribution(16, 256),  # randint's high is exclusive
        "heads": dist.IntDistribution(1, 64, log=True),
        "batch": dist.IntDistribution(8, 96, step=8),  # qrandint counts multiples from low; 104 > 100
        "drop": dist.FloatDistribution(0.1, 0.5, step=0.1),  # quniform's values are multiples of q
        "eps": dist.IntDistribution(1, 1000, log=True),  # which multiple of q, on a log scale
        "act": dist.CategoricalDistribution(["relu", "tanh", None]),
        "mixed": dist.CategoricalDistribution([0, 1, 2]),  # 1 == True: Optuna gets the indices
    }
    for config, trial in zip(configs, searcher.study.trials):
        params = trial.params
        assert config["seed"] == 7
        assert config["lr"] == params["lr"] and config["units"] == params["units"]
        assert isinstance(config["units"], int) and isinstance(config["heads"], int)
        assert config["batch"] % 8 == 0 and config["batch"] <= 96
        assert math.isclose(config["drop"] * 10, round(config["drop"] * 10)) and 0.1 <= config["drop"] <= 0.5
        assert math.isclose(config["eps"], params["eps"] * 1e-3)
        assert config["act"] == params["act"]
        assert config["mixed"] == [1, True, "1"][params["mixed"]] and type(config["mixed"]) is \
            type([1, True, "1"][params["mixed"]])
    assert {c["mixed"] for c in configs if c["mixed"] is True} == {True}  # True is not turned into 1


def test_conditional_parameters_exist_only_in_their_branch(optuna, storage) -> None:
    space = {"x": at.uniform(0, 1), "y": 0.0,
             "model": at.choice([{"kind": "linear", "l2": at.loguniform(1e-4, 1.0)},
                                 {"kind": "tree", "depth": at.randint(1, 9), "split": at.choice(["gini", "entropy"])}]),
             "wd": at.sample_from(lambda config: config["x"] / 10)}
    searcher = OptunaSearch(seed=3, sampler_kwargs={"n_startup_trials": 4})
    analysis = at.run(quadratic, config=space, num_samples=12, metric="loss", mode="min", search_alg=searcher,
                      max_concurrent_trials=2, storage_path=storage, verbose=0)
    kinds = set()
    for trial, ot_trial in zip(analysis.trials, searcher.study.trials):
        model, params = trial.config["model"], ot_trial.params
        kinds.add(model["kind"])
        if model["kind"] == "linear":
            assert set(params) == {"x", "model", "model/<0>/l2"} and set(model) == {"kind", "l2"}
            assert model["l2"] == params["model/<0>/l2"]
        else:
            assert set(params) == {"x", "model", "model/<1>/depth", "model/<1>/split"}
            assert model["depth"] == params["model/<1>/depth"] and model["split"] == params["model/<1>/split"]
        assert trial.config["wd"] == pytest.approx(trial.config["x"] / 10)
        assert ot_trial.state is optuna.trial.TrialState.COMPLETE
        assert ot_trial.value == pytest.approx(trial.last_result["loss"])
    assert kinds == {"linear", "tree"}


def test_points_to_evaluate_come_first_and_the_sampler_fills_the_gaps(optuna) -> None:
    space = {"eps": at.qloguniform(1e-3, 1.0, 1e-3), "batch": at.qrandint(8, 100, 8), "act": at.choice(["relu", "tanh"]),
             "model": at.choice([{"kind": "linear", "l2": at.loguniform(1e-4, 1.0)}, {"kind": "tree"}])}
    points = [{"eps": 0.25, "batch": 64, "act": "tanh", "model": {"kind": "linear", "l2": 0.01}},
              {"act": "relu", "model": {"kind": "tree"}}]
    searcher = _searcher(space, OptunaSearch(seed=0, points_to_evaluate=points))
    first, second, third = (searcher.suggest(f"trial_{i:05d}") for i in range(3))
    assert first == points[0]
    assert second["act"] == "relu" and second["model"] == {"kind": "tree"}
    assert 1e-3 <= second["eps"] <= 1.0 and second["batch"] % 8 == 0
    assert third != first
    with pytest.raises(ValueError, match=r"points_to_evaluate value 200 at config\['batch'\]"):
        _searcher(space, OptunaSearch(points_to_evaluate=[{"batch": 200}]))
    # A misspelt key was dropped: the point ran with a value of the sampler's choosing instead.
    with pytest.raises(ValueError, match=r"points_to_evaluate\[1\] sets config\['Batch'\], which is not in the search "
                                         r"space; the keys there are \['act', 'batch', 'eps', 'model'\]"):
        _searcher(space, OptunaSearch(points_to_evaluate=[{"batch": 64}, {"Batch": 64}]))


@pytest.mark.parametrize("domain, where", [
    (at.randn(0, 1), "config['a']['b']"),
    (at.grid_search([1, 2]), "config['a']['b']"),
], ids=["randn", "grid_search"])
def test_a_domain_optuna_cannot_take_fails_before_any_trial(optuna, storage, domain, where) -> None:
    with pytest.raises(SearchSpaceError, match=r"OptunaSearch.*" + r"config\['a'\]\['b'\]"):
        at.run(quadratic, config={"x": at.uniform(0, 1), "y": 0.0, "a": {"b": domain}}, num_samples=2,
               metric="loss", mode="min", search_alg=OptunaSearch(), storage_path=storage, verbose=0)
    assert not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


def test_a_define_by_run_space_function(optuna, storage) -> None:
    def space(trial) -> dict:
        x = trial.suggest_float("x", 0.0, 1.0)
        if x > 0.5:
            trial.suggest_int("extra", 1, 3)
        return {"y": -1.0}

    searcher = OptunaSearch(space=space, seed=0)
    analysis = at.run(quadratic, config={"constant": "kept"}, num_samples=8, metric="loss", mode="min",
                      search_alg=searcher, max_concurrent_trials=2, storage_path=storage, verbose=0)
    for trial, ot_trial in zip(analysis.trials, searcher.study.trials):
        assert trial.config == {"constant": "kept", **ot_trial.params, "y": -1.0}
        assert ("extra" in trial.config) == (trial.config["x"] > 0.5)
        assert ot_trial.value == pytest.approx((trial.config["x"] - 0.3) ** 2)


@pytest.mark.parametrize("space, config, error, message", [
    (lambda trial: trial.suggest_float("x", 1.0, 0.0), {}, ValueError, "cannot suggest"),
    (lambda trial: [trial.suggest_float("x", 0.0, 1.0)], {}, SearchSpaceError, "must return None or a dict"),
    (lambda trial: None, {"lr": at.uniform(0, 1)}, SearchSpaceError, r"domains at config\['lr'\]"),
], ids=["raises", "returns-a-list", "domains-in-both"])
def test_a_bad_space_function_fails_before_any_trial(optuna, storage, space, config, error, message) -> None:
    with pytest.raises(error, match=message):
        at.run(quadratic, config=config, num_samples=2, metric="loss", mode="min",
               search_alg=OptunaSearch(space=space), storage_path=storage, verbose=0)
    assert not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


def _define_by_run(trial) -> None:
    if trial.suggest_categorical("kind", ["linear", "tree"]) == "tree":
        trial.suggest_int("depth", 1, 8)
    trial.suggest_float("x", 0.0, 1.0)


@pytest.mark.parametrize("point, message", [
    ({"x": 3.0}, r"points_to_evaluate\[0\] sets 'x' to 3.0, outside FloatDistribution"),
    ({"kind": "forest"}, r"points_to_evaluate\[0\] \{'kind': 'forest'\} does not fit the space function: 'forest' "
                         r"not in \('linear', 'tree'\)"),
    ({"kind": "linear", "depth": 3}, r"sets 'depth', which the space function does not suggest for this point; "
                                      r"it suggests \['kind', 'x'\]"),
], ids=["outside", "no-such-category", "inactive-branch"])
def test_a_bad_point_for_a_space_function_fails_before_any_trial(optuna, storage, point, message) -> None:
    # Before, Optuna only logged a warning and the trial ran x=3.0 (or depth=3 went unused).
    with pytest.raises(ValueError, match=message):
        at.run(quadratic, config={"y": -1.0}, num_samples=2, metric="loss", mode="min",
               search_alg=OptunaSearch(space=_define_by_run, points_to_evaluate=[point]), storage_path=storage,
               verbose=0)
    assert not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


def test_a_dict_of_distributions_or_a_space_function_first_as_in_ray(optuna, storage) -> None:
    # Ray's OptunaSearch(space, metric, mode) takes either; before, a dict was refused and a
    # function in first place was taken for a sampler.
    dists = optuna.distributions
    space = {"x": dists.FloatDistribution(0.0, 1.0), "n": dists.IntDistribution(1, 64, log=True),
             "kind": dists.CategoricalDistribution(["a", "b"])}
    searcher = OptunaSearch(space, metric="loss", mode="min", points_to_evaluate=[{"x": 0.3, "n": 4}])
    analysis = at.run(quadratic, config={"y": -1.0}, num_samples=4, search_alg=searcher, storage_path=storage,
                      verbose=0, seed=0)
    configs = [t.config for t in analysis.trials]
    assert configs[0]["x"] == 0.3 and configs[0]["n"] == 4
    for config in configs:
        assert set(config) == {"x", "n", "kind", "y"} and type(config["n"]) is int and config["kind"] in ("a", "b")
    first = OptunaSearch(_define_by_run, seed=0)
    assert first.define_by_run is _define_by_run and first.sampler is None


# --- samplers ---------------------------------------------------------------------------------

def _tpe_run(storage: str, name: str, seed: int) -> list[dict]:
    searcher = OptunaSearch(sampler="tpe", seed=seed, sampler_kwargs={"n_startup_trials": 3})
    analysis = at.run(quadratic, config={"x": at.uniform(0, 1), "y": at.uniform(-2, 2)}, num_samples=8,
                      metric="loss", mode="min", search_alg=searcher, max_concurrent_trials=1,
                      storage_path=storage, name=name, verbose=0)
    return [t.config for t in analysis.trials]


def test_tpe_with_a_seed_suggests_the_same_configs_again(optuna, storage) -> None:
    first, again, other = (_tpe_run(storage, "a", 5), _tpe_run(storage, "b", 5), _tpe_run(storage, "c", 6))
    assert first == again
    assert first != other
    assert first[3:] != other[3:]  # past the 3 startup trials, TPE's own suggestions too


def test_nsga2_with_a_seed_is_reproducible_on_two_objectives(optuna) -> None:
    def drive(seed: int) -> tuple[list[dict], Any]:
        searcher = _searcher({"x": at.uniform(0, 1), "y": at.uniform(0, 1)},
                             OptunaSearch(sampler="nsga2", seed=seed, sampler_kwargs={"population_size": 4}),
                             metric=["f1", "f2"], mode=["min", "min"])
        configs = []
        for i in range(16):  # four generations, asked two at a time
            trial_id = f"trial_{i:05d}"
            configs.append(searcher.suggest(trial_id))
            if i % 2 == 1:
                for done in (f"trial_{i - 1:05d}", trial_id):
                    x, y = configs[int(done[-5:])].values()
                    searcher.on_trial_complete(done, {"f1": x, "f2": 1 - math.sqrt(x) + y})
        return configs, searcher.study

    configs, study = drive(2)
    assert configs == drive(2)[0] and configs != drive(3)[0]
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert all(len(t.values) == 2 for t in study.trials)
    generations = {t.system_attrs.get("NSGAIISampler:generation") for t in study.trials}
    assert len(generations) > 1  # NSGA-II bred later generations from the told values


def zdt1(config: dict) -> None:
    """ZDT1 on two variables: the true front is f2 = 1 - sqrt(f1), at y = 0."""
    x, y = config["x"], config["y"]
    g = 1 + 9 * y
    at.report(f1=x, f2=g * (1 - math.sqrt(x / g)))


def _nsga2_run(storage: str, name: str, seed: int) -> tuple[Any, OptunaSearch]:
    searcher = OptunaSearch(sampler="nsga2", seed=seed, sampler_kwargs={"population_size": 6})
    analysis = at.run(zdt1, config={"x": at.uniform(0, 1), "y": at.uniform(0, 1)}, num_samples=24,
                      metric=["f1", "f2"], mode=["min", "min"], search_alg=searcher, max_concurrent_trials=1,
                      storage_path=storage, name=name, verbose=0)
    return analysis, searcher


def test_nsga2_in_a_multi_objective_run(optuna, storage) -> None:
    analysis, searcher = _nsga2_run(storage, "a", seed=4)
    again, _ = _nsga2_run(storage, "b", seed=4)
    assert [t.config for t in analysis.trials] == [t.config for t in again.trials]
    study = searcher.study
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    for trial, ot_trial in zip(analysis.trials, study.trials):
        assert ot_trial.values == [trial.last_result["f1"], trial.last_result["f2"]]
    assert max(t.system_attrs.get("NSGAIISampler:generation", 0) for t in study.trials) >= 2
    # Optuna's front and asynctune's are the same trials.
    assert {t.number for t in study.best_trials} == {t.index for t in analysis.pareto_front()}


def test_a_sampler_missing_its_package_fails_before_any_trial(optuna, storage) -> None:
    # GPSampler imports torch only after its 10 random startup trials: the run would stop there.
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed")
    with pytest.raises(ImportError, match="GPSampler needs torch"):
        at.run(quadratic, config={"x": at.uniform(0, 1), "y": 0.0}, num_samples=12, metric="loss", mode="min",
               search_alg=OptunaSearch(sampler="gp"), storage_path=storage, verbose=0)
    assert not any(name.startswith("trial_") for _, dirs, _ in os.walk(storage) for name in dirs)


def test_cmaes_searches_a_continuous_space(optuna, storage) -> None:
    pytest.importorskip("cmaes")
    searcher = OptunaSearch(sampler="cmaes", seed=1, sampler_kwargs={"n_startup_trials": 4})
    analysis = at.run(quadratic, config={"x": at.uniform(-2, 2), "y": at.uniform(-3, 1)}, num_samples=24,
                      metric="loss", mode="min", search_alg=searcher, max_concurrent_trials=2,
                      storage_path=storage, verbose=0)
    attrs = [t.system_attrs for t in searcher.study.trials]
    assert sum(any(k.startswith("cma:") for k in a) for a in attrs) >= 16  # CMA-ES, not its fallback
    assert analysis.best_result["loss"] < 0.3


def test_cmaes_refuses_two_objectives_before_any_trial(optuna, storage) -> None:
    pytest.importorskip("cmaes")
    with pytest.raises(ValueError, match="CmaEsSampler cannot suggest"):
        _searcher({"x": at.uniform(0, 1)}, OptunaSearch(sampler="cmaes"), metric=["a", "b"], mode=["min", "min"])


def test_a_grid_sampler_runs_each_point_once_then_finishes(optuna, storage) -> None:
    grid = {"x": [0.1, 0.3, 0.9], "y": [-1.0, 0.0]}
    searcher = OptunaSearch(sampler=optuna.samplers.GridSampler(grid, seed=0))
    analysis = at.run(quadratic, config={"x": at.choice(grid["x"]), "y": at.choice(grid["y"])}, num_samples=50,
                      metric="loss", mode="min", search_alg=searcher, max_concurrent_trials=1,
                      storage_path=storage, verbose=0)
    assert sorted((t.config["x"], t.config["y"]) for t in analysis.trials) == [
        (x, y) for x in grid["x"] for y in grid["y"]]
    assert [t.state.name for t in searcher.study.trials] == ["COMPLETE"] * 6


def test_concurrent_asks_keep_several_trials_running(optuna) -> None:
    searcher = _searcher({"x": at.uniform(0, 1)}, OptunaSearch(seed=0, sampler_kwargs={"n_startup_trials": 2}))
    for i in range(4):
        searcher.suggest(f"trial_{i:05d}")
        searcher.on_trial_complete(f"trial_{i:05d}", {"loss": float(i)})
    configs = [searcher.suggest(f"trial_{i:05d}") for i in range(4, 8)]
    states = [t.state.name for t in searcher.study.trials]
    assert states == ["COMPLETE"] * 4 + ["RUNNING"] * 4
    assert len({c["x"] for c in configs}) == 4
    searcher.on_trial_complete("trial_00006", {"loss": 0.5})
    searcher.on_trial_complete("trial_00004", None, error=True)
    assert [t.state.name for t in searcher.study.trials[4:]] == ["FAIL", "RUNNING", "COMPLETE", "RUNNING"]


# --- pruned, failed and intermediate results -----------------------------------------------------

class Recorder(RandomSearch):
    """Records which hook heard of each trial's end."""

    def __init__(self, *, prunes: bool) -> None:
        super().__init__(seed=0)
        self.completed: dict[str, int] = {}
        self.pruned: dict[str, int] = {}
        if prunes:
            self.on_trial_pruned = self._pruned  # type: ignore[method-assign]

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        self.completed[trial_id] = result["training_iteration"]

    def _pruned(self, trial_id, result=None) -> None:
        self.pruned[trial_id] = result["training_iteration"]


def _asha() -> ASHAScheduler:
    return ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)


def test_the_searcher_hears_which_trials_the_scheduler_stopped_early(storage) -> None:
    searcher = Recorder(prunes=True)
    analysis = at.run(learning_curve, config={"x": at.uniform(0, 1)}, num_samples=9, metric="loss", mode="min",
                      search_alg=searcher, scheduler=_asha(), max_concurrent_trials=2, storage_path=storage,
                      verbose=0)
    last = {t.trial_id: t.last_result["training_iteration"] for t in analysis.trials}
    assert searcher.pruned == {k: v for k, v in last.items() if v < 9} and searcher.pruned
    assert searcher.completed == {k: v for k, v in last.items() if v == 9} and searcher.completed
    # A searcher without the hook hears of every end through on_trial_complete, as before.
    plain = Recorder(prunes=False)
    analysis = at.run(learning_curve, config={"x": at.uniform(0, 1)}, num_samples=9, metric="loss", mode="min",
                      search_alg=plain, scheduler=_asha(), max_concurrent_trials=2, storage_path=storage,
                      verbose=0)
    assert plain.completed == {t.trial_id: t.last_result["training_iteration"] for t in analysis.trials}


def endless_curve(config: dict) -> None:
    """Runs until stopped, checkpointing each step: HyperBand pauses it at a rung and resumes it."""
    checkpoint = at.get_checkpoint()
    step = checkpoint["step"] if checkpoint else 0
    while True:
        step += 1
        at.report(loss=-config["x"] * step, checkpoint={"step": step})


def test_hyperband_trials_paused_then_ended_are_pruned_too(storage) -> None:
    # R=3, eta=3, one worker: x=3 and x=1 pause at the rung, x=2 completes it and is stopped there,
    # x=1 is then ended while paused, x=3 resumes to max_t (see test_scheduler_integration.py).
    searcher = Recorder(prunes=True)
    analysis = at.run(endless_curve, config={"x": at.grid_search([3, 1, 2])}, metric="loss", mode="min",
                      search_alg=searcher, scheduler=at.HyperBandScheduler(max_t=3, reduction_factor=3),
                      max_concurrent_trials=1, storage_path=storage, verbose=0)
    by_x = {t.config["x"]: t.trial_id for t in analysis.trials}
    assert searcher.pruned == {by_x[1]: 1, by_x[2]: 1}
    assert searcher.completed == {by_x[3]: 3}


@pytest.mark.parametrize("limited", [False, True], ids=["plain", "in-a-concurrency-limiter"])
def test_trials_asha_stops_are_told_pruned_with_their_last_value(optuna, storage, limited) -> None:
    searcher = OptunaSearch(seed=0)
    analysis = at.run(learning_curve, config={"x": at.uniform(0, 1)}, num_samples=9, metric="loss", mode="min",
                      search_alg=ConcurrencyLimiter(searcher, 2) if limited else searcher, scheduler=_asha(),
                      max_concurrent_trials=2, storage_path=storage, verbose=0)
    states = optuna.trial.TrialState
    told = searcher.study.trials
    assert len(told) == len(analysis.trials) == 9
    for trial, ot_trial in zip(analysis.trials, told):
        results = analysis.trial_results(trial.trial_id)
        assert ot_trial.intermediate_values == {r["training_iteration"]: r["loss"] for r in results}
        assert ot_trial.value == pytest.approx(results[-1]["loss"])
        expected = states.COMPLETE if results[-1]["training_iteration"] == 9 else states.PRUNED
        assert ot_trial.state is expected, trial.trial_id
    assert {t.state for t in told} == {states.COMPLETE, states.PRUNED}


def failing_sometimes(config: dict) -> None:
    at.report(loss=config["x"])
    if config["x"] > 0.5:
        raise RuntimeError("diverged")
    at.report(loss=config["x"] / 2)


def test_errored_trials_are_told_failed(optuna, storage) -> None:
    searcher = OptunaSearch(seed=1)
    analysis = at.run(failing_sometimes, config={"x": at.uniform(0, 1)}, num_samples=8, metric="loss", mode="min",
                      search_alg=searcher, max_concurrent_trials=2, storage_path=storage, verbose=0,
                      raise_on_failed_trial=False)
    states = [(t.status.value, o.state.name) for t, o in zip(analysis.trials, searcher.study.trials)]
    assert ("ERROR", "FAIL") in states and ("FINISHED", "COMPLETE") in states
    assert set(states) == {("ERROR", "FAIL"), ("FINISHED", "COMPLETE")}


# --- resume after a killed driver ------------------------------------------------------------------

EXPERIMENT = textwrap.dedent("""
    import sys, time
    import asynctune as at
    from asynctune.algorithms import OptunaSearch

    def train(config):
        checkpoint = at.get_checkpoint()
        for i in range(checkpoint["i"] if checkpoint else 0, 6):
            time.sleep(config["pause"])
            at.report(loss=(config["x"] - 0.3) ** 2 + (config["k"] == "b") + 1 / (i + 1),
                      checkpoint={"i": i + 1} if (i + 1) % 2 == 0 else None)

    if __name__ == "__main__":
        at.run(train, config={"x": at.uniform(0, 1), "k": at.choice(["a", "b"]), "pause": float(sys.argv[3])},
               num_samples=8,
               search_alg=OptunaSearch(seed=11, sampler_kwargs={"n_startup_trials": 3}),
               max_concurrent_trials=1, metric="loss", mode="min",
               storage_path=sys.argv[1], name=sys.argv[2], verbose=0)
""")




def test_a_killed_driver_resumes_with_the_same_study(optuna, tmp_path) -> None:
    script = tmp_path / "experiment.py"
    script.write_text(EXPERIMENT)
    results = tmp_path / "results"
    driver = subprocess.Popen([sys.executable, str(script), str(results), "killed", "0.1"])
    experiment_dir = results / "killed"
    wait_for_results(experiment_dir, 27, timeout=60)  # into the 5th trial: TPE's own
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    time.sleep(0.5)  # its worker notices the closed pipe and ends
    resumed = at.resume(str(experiment_dir), verbose=0)

    subprocess.run([sys.executable, str(script), str(results), "reference", "0"], check=True, timeout=120)
    reference = at.ExperimentAnalysis(str(results / "reference"))
    # The study and the sampler's random state came back: the same configs as without the kill.
    searched = [(t.config["x"], t.config["k"]) for t in resumed.trials]
    assert searched == [(t.config["x"], t.config["k"]) for t in reference.trials]
    assert [t.status for t in resumed.trials] == [at.Status.TERMINATED] * 8
    from asynctune.store.signing import load_signed_pickle

    state = load_signed_pickle(str(experiment_dir / "searcher_state.pkl"), loads=cloudpickle.loads)
    study = optuna.load_study(study_name="asynctune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(experiment_dir / "optuna_journal.log"))))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 8
    assert [t.value for t in study.trials] == pytest.approx([t.last_result["loss"] for t in resumed.trials])
    assert not state["_live"]
