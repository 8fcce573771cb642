"""asynctune.compat.ray's schedulers and searchers: Ray's names, arguments and defaults, on real runs."""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time

import cloudpickle
import pytest

import asynctune as at
import asynctune.compat.ray as ray
from asynctune.compat.ray import tune
from asynctune.compat.ray._unsupported import UnsupportedRayFeature
from asynctune.compat.ray.tune.schedulers import (
    ASHAScheduler, AsyncHyperBandScheduler, HyperBandForBOHB, HyperBandScheduler, MedianStoppingRule,
    PopulationBasedTraining,
)
from asynctune.compat.ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater
from asynctune.compat.ray.tune.utils.mock_trainable import MyTrainableClass

from tests.helpers.compat_ray_helpers import two_cpus  # noqa: F401  (autouse: ray.init(num_cpus=2) around each test)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module


def fit(trainable, storage, *, param_space=None, stop=None, checkpoint_config=None, **tune_config) -> tune.ResultGrid:
    return tune.Tuner(trainable, param_space=param_space or {}, tune_config=tune.TuneConfig(**tune_config),
                      run_config=tune.RunConfig(storage_path=storage, verbose=0, stop=stop,
                                                checkpoint_config=checkpoint_config)).fit()


def resumable_curve(config: dict) -> None:
    """loss = x / step for steps 1..8, checkpointed each step (HyperBand pauses and resumes trials)."""
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory, open(os.path.join(directory, "step")) as f:
            step = int(f.read())
    while step < 8:
        step += 1
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "step"), "w") as f:
                f.write(str(step))
            tune.report({"loss": config["x"] / step}, checkpoint=tune.Checkpoint.from_directory(directory))


# Schedulers ---------------------------------------------------------------------------------------

def test_schedulers_take_rays_defaults_where_asynctunes_differ():
    median = MedianStoppingRule()
    assert (median.time_attr, median.grace_period, median.min_samples_required) == ("time_total_s", 60.0, 3)
    assert at.MedianStoppingRule().time_attr == "training_iteration"  # asynctune's own stays as it was
    pbt = PopulationBasedTraining(hyperparam_mutations={"lr": tune.uniform(0, 1)})
    assert (pbt.time_attr, pbt.perturbation_interval) == ("time_total_s", 60.0)
    asha = ASHAScheduler()
    assert (asha.time_attr, asha.max_t, asha.grace_period, asha.reduction_factor, asha.brackets) == \
        ("training_iteration", 100, 1, 4, 1)
    assert AsyncHyperBandScheduler is ASHAScheduler and issubclass(HyperBandForBOHB, HyperBandScheduler)
    hyperband = HyperBandScheduler(max_t=81)
    assert hyperband.bracket_sizes()[0] == (5, 81) and at.HyperBandScheduler(max_t=81).bracket_sizes()[0] == (81, 1.0)


def test_hyperband_fills_brackets_in_rays_order(storage):
    """max_t=4, eta=2: Ray starts with the bracket of 3 trials that all train to 4; the paper's
    order (asynctune's own) starts with 4 trials at r=1 and stops some of them early."""
    space = {"x": tune.grid_search([1.0, 2.0, 3.0])}
    ray_order = fit(resumable_curve, storage, param_space=space, metric="loss", mode="min",
                    scheduler=HyperBandScheduler(max_t=4, reduction_factor=2))
    assert sorted(r.metrics["training_iteration"] for r in ray_order) == [4, 4, 4]
    paper_order = fit(resumable_curve, storage, param_space=space, metric="loss", mode="min",
                      scheduler=at.HyperBandScheduler(max_t=4, reduction_factor=2))
    assert min(r.metrics["training_iteration"] for r in paper_order) < 4


def test_asha_with_rays_arguments_stops_the_worse_trials_early(storage):
    results = fit(resumable_curve, storage, param_space={"x": tune.grid_search([1.0, 2.0, 4.0, 8.0])},
                  metric="loss", mode="min", scheduler=ASHAScheduler(time_attr="training_iteration", max_t=8,
                                                                     grace_period=1, reduction_factor=2))
    iterations = {r.config["x"]: r.metrics["training_iteration"] for r in results}
    assert iterations[1.0] == 8 and iterations[8.0] < 8


def test_stop_last_trials_false_lets_the_best_train_past_max_t_as_in_ray(storage):
    # max_t=4: with Ray's stop_last_trials=False the trials that pass the last rung train on to
    # their own end (8 steps); the worst is still stopped at its rung.
    results = fit(resumable_curve, storage, param_space={"x": tune.grid_search([1.0, 8.0])}, metric="loss",
                  mode="min", scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2,
                                                     stop_last_trials=False), max_concurrent_trials=1)
    iterations = {r.config["x"]: r.metrics["training_iteration"] for r in results}
    assert iterations == {1.0: 8, 8.0: 1}
    assert HyperBandForBOHB(max_t=10, reduction_factor=2, stop_last_trials=False).stop_last_trials is False


def test_median_stopping_rule_with_rays_arguments(storage):
    results = fit(resumable_curve, storage, param_space={"x": tune.grid_search([1.0, 1.1, 1.2, 50.0])},
                  metric="loss", mode="min", max_concurrent_trials=1,
                  scheduler=MedianStoppingRule(time_attr="training_iteration", grace_period=2,
                                               min_samples_required=2))
    iterations = {r.config["x"]: r.metrics["training_iteration"] for r in results}
    assert iterations[1.0] == 8 and iterations[50.0] < 8


class Learner(tune.Trainable):
    def setup(self, config):
        self.score = 0.0
        # Start together, so the population trains side by side however slowly workers start.
        open(os.path.join(config["barrier"], self.trial_id), "w").close()
        deadline = time.time() + 30
        while len(os.listdir(config["barrier"])) < 4 and time.time() < deadline:
            time.sleep(0.02)

    def step(self):
        time.sleep(0.2)  # long enough for the population to train side by side, also on a loaded machine
        self.score += self.config["lr"]
        return {"score": self.score}

    def save_checkpoint(self, checkpoint_dir):
        return {"score": self.score}

    def load_checkpoint(self, checkpoint):
        self.score = checkpoint["score"]

    def reset_config(self, new_config):
        self.config = new_config
        return True


def test_population_based_training_with_rays_arguments(storage, tmp_path):
    ray.init(num_cpus=4)  # the whole population at once
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"lr": tune.uniform(0.0, 1.0)})
    # Scores that never tie, and three perturbation points (2, 4, 6): a trial ranked before the
    # others reach an interval is compared with fewer trials, so one point alone may find no
    # bottom trial (with lr 0.01 and 0.02, 0.01 at step 4 tied 0.02 at step 2, and no MUTATE).
    results = fit(Learner, storage, param_space={"lr": tune.grid_search([0.01, 0.3, 0.9, 1.0]), "barrier": str(tmp_path)},
                  metric="score", mode="max", scheduler=pbt, stop={"training_iteration": 8},
                  checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2))  # as Ray's PBT docs advise
    decisions = at.ExperimentAnalysis(results.experiment_path).decisions()
    assert any(d["decision"] == "MUTATE" for d in decisions)
    # every trial reached the stop criterion; one that cloned a finished donor goes on from the donor's step
    assert all(r.metrics["training_iteration"] >= 8 for r in results)
    with pytest.raises(UnsupportedRayFeature, match="synch=True"):
        PopulationBasedTraining(hyperparam_mutations={"lr": [0.1]}, synch=True)


# Searchers ----------------------------------------------------------------------------------------

def quadratic(config: dict) -> None:
    tune.report({"loss": (config["x"] - 1) ** 2, "kind": config.get("kind")})


def test_optuna_search_with_a_space_of_optuna_distributions(storage):
    optuna = pytest.importorskip("optuna")
    from asynctune.compat.ray.tune.search.optuna import OptunaSearch
    space = {"x": optuna.distributions.FloatDistribution(-2.0, 2.0),
             "kind": optuna.distributions.CategoricalDistribution(["a", "b"])}
    results = fit(quadratic, storage, num_samples=4,
                  search_alg=OptunaSearch(space, metric="loss", mode="min", seed=0,
                                          points_to_evaluate=[{"x": 1.0, "kind": "a"}]))
    assert len(results) == 4 and all(-2 <= r.config["x"] <= 2 and r.config["kind"] in "ab" for r in results)
    assert results.get_best_result("loss", "min").metrics["loss"] == 0.0  # the point to evaluate ran
    with pytest.raises(ValueError, match="Optuna Float-, Int- or CategoricalDistribution"):
        OptunaSearch({"x": (0, 1)})


def test_optuna_search_define_by_run_returning_constants(storage):
    pytest.importorskip("optuna")
    from asynctune.compat.ray.tune.search.optuna import OptunaSearch

    def define_by_run(trial):
        trial.suggest_float("x", -2.0, 2.0)
        return {"kind": "constant"}

    results = fit(quadratic, storage, num_samples=3, metric="loss", mode="min",
                  search_alg=OptunaSearch(space=define_by_run, seed=1))
    assert [r.metrics["kind"] for r in results] == ["constant"] * 3


def test_hyperopt_search_with_rays_arguments_and_a_conditional_space(storage):
    hp = pytest.importorskip("hyperopt").hp
    from asynctune.compat.ray.tune.search.hyperopt import HyperOptSearch
    space = {"x": hp.uniform("x", -2, 2), "kind": hp.choice("kind", [{"name": "a", "m": hp.uniform("m", 0, 1)},
                                                                    {"name": "b"}])}
    search = HyperOptSearch(space, metric="loss", mode="min", random_state_seed=0, n_initial_points=2,
                            points_to_evaluate=[{"x": 1.0, "kind": 1}])
    results = fit(quadratic, storage, num_samples=4, search_alg=ConcurrencyLimiter(search, max_concurrent=2))
    assert results[0].config == {"x": 1.0, "kind": {"name": "b"}}
    assert all(set(r.config["kind"]) == ({"name", "m"} if r.config["kind"]["name"] == "a" else {"name"})
               for r in results)


def test_tune_bohb_with_hyperband_for_bohb(storage):
    from asynctune.compat.ray.tune.search.bohb import TuneBOHB
    results = fit(MyTrainableClass, storage, num_samples=6, metric="episode_reward_mean", mode="max",
                  param_space={"width": tune.uniform(1, 20), "height": tune.uniform(-10, 10)},
                  scheduler=HyperBandForBOHB(max_t=4, reduction_factor=2),
                  search_alg=TuneBOHB(seed=0, bohb_config={"min_points_in_model": 2}),
                  stop={"training_iteration": 4})
    assert len(results) == 6 and results.num_errors == 0
    assert results.get_best_result().metrics["episode_reward_mean"] == max(
        r.metrics["episode_reward_mean"] for r in results)
    with pytest.raises(UnsupportedRayFeature, match="param_space"):
        TuneBOHB(space=object())


def test_skopt_search_with_rays_arguments(storage):
    pytest.importorskip("skopt")
    from asynctune.compat.ray.tune.search.skopt import SkOptSearch
    results = fit(quadratic, storage, num_samples=3, param_space={"x": tune.uniform(-2, 2)},
                  search_alg=SkOptSearch(metric="loss", mode="min", points_to_evaluate=[{"x": 1.0}]))
    assert results[0].config["x"] == 1.0 and len(results) == 3
    with pytest.raises(UnsupportedRayFeature, match="space"):
        SkOptSearch(space={"x": (0.0, 1.0)})


def timed(config: dict) -> None:
    started = time.time()
    time.sleep(0.3)
    tune.report({"started": started, "ended": time.time(), "x": config["x"]})


def test_basic_variant_generator_max_concurrent_and_random_state(storage):
    results = fit(timed, storage, num_samples=3, param_space={"x": tune.uniform(0, 1)},
                  search_alg=BasicVariantGenerator(max_concurrent=1, random_state=3))
    windows = sorted((r.metrics["started"], r.metrics["ended"]) for r in results)
    assert all(later[0] >= earlier[1] for earlier, later in zip(windows, windows[1:]))  # one at a time
    again = fit(timed, storage, num_samples=3, param_space={"x": tune.uniform(0, 1)},
                search_alg=BasicVariantGenerator(random_state=3))
    assert sorted(r.config["x"] for r in results) == sorted(r.config["x"] for r in again)


def test_concurrency_limiter_batch_runs_whole_batches_as_in_ray(storage):
    # batch=True: two at a time, the next two once both have ended (no overlap across batches).
    results = fit(timed, storage, num_samples=4, param_space={"x": tune.uniform(0, 1)},
                  search_alg=ConcurrencyLimiter(BasicVariantGenerator(random_state=0), max_concurrent=2, batch=True))
    windows = sorted((r.metrics["started"], r.metrics["ended"]) for r in results)
    assert max(end for _, end in windows[:2]) <= min(start for start, _ in windows[2:])


def test_a_partial_point_in_a_conditional_space_takes_its_branch(storage):
    # A point naming a branch of a choice of dicts runs in that branch, with the branch's other
    # keys drawn there (before: laid over whatever branch was drawn, without its keys).
    space = {"opt": tune.choice([{"name": "sgd", "momentum": tune.uniform(0.5, 0.99)},
                                 {"name": "adam", "beta1": tune.uniform(0.8, 0.99)}])}
    names = ["sgd", "adam"] * 3
    generator = BasicVariantGenerator(points_to_evaluate=[{"opt": {"name": name}} for name in names], random_state=1)
    results = fit(echo_config, storage, num_samples=len(names), param_space=space, search_alg=generator)
    keys = {"sgd": ["momentum", "name"], "adam": ["beta1", "name"]}
    assert sorted(r.config["opt"]["name"] for r in results) == sorted(names)
    assert all(sorted(r.config["opt"]) == keys[r.config["opt"]["name"]] for r in results), [r.config for r in results]


def echo_config(config: dict) -> None:
    tune.report({"loss": 0.0})


def point_of(config: dict) -> dict:
    return {"x": config["x"], "y": config["y"]}


def test_basic_variant_generator_points_replace_samples_and_expand_the_grid_they_leave_open(storage):
    # Ray: each point replaces one of num_samples; a grid key the point does not set is expanded.
    space = {"x": tune.grid_search([0, 1, 2]), "y": tune.randint(0, 3)}
    results = fit(point_of, storage, num_samples=3, param_space=space,
                  search_alg=BasicVariantGenerator(points_to_evaluate=[{"x": 1, "y": 1}, {"y": 2}], random_state=0))
    configs = [(r.metrics["x"], r.metrics["y"]) for r in results]
    assert configs[:4] == [(1, 1), (0, 2), (1, 2), (2, 2)]  # the points first
    assert len(configs) == 4 + 3  # and one sample of the grid for the one of num_samples left
    assert sorted(x for x, _ in configs[4:]) == [0, 1, 2]
    plain = fit(point_of, storage, num_samples=4, param_space={"x": 5, "y": tune.randint(0, 3)},
                search_alg=BasicVariantGenerator(points_to_evaluate=[{"y": 2}]))
    assert len(plain) == 4 and plain[0].config["y"] == 2


def test_a_custom_searcher_written_against_rays_searcher_interface(storage):
    class Upwards(tune.search.Searcher):
        def __init__(self):
            super().__init__(metric="loss", mode="min")
            self.seen = []

        def suggest(self, trial_id):
            return {"x": float(len(self.seen))} if len(self.seen) < 3 else None

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.seen.append(result["loss"])

    results = fit(quadratic, storage, num_samples=3, search_alg=ConcurrencyLimiter(Upwards(), max_concurrent=1))
    assert sorted(r.config["x"] for r in results) == [0.0, 1.0, 2.0]
    assert math.isclose(results.get_best_result("loss", "min").metrics["loss"], 0.0)


class Counting(tune.search.Searcher):
    """Suggests x = 0, 1, 2, ...; records what it is told."""

    def __init__(self):
        super().__init__(metric="loss", mode="min")
        self.asked, self.told = 0, []

    def suggest(self, trial_id):
        self.asked += 1
        return {"x": self.asked - 1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, result, error))


def test_repeater_repeats_each_config_and_tells_the_searcher_the_mean_once(tmp_path):
    repeater = Repeater(Counting(), repeat=3)
    repeater.set_search_properties(None, None, at.Space({}))
    configs = [repeater.suggest(f"t{i}") for i in range(4)]
    assert configs[:3] == [{"x": 0, "__trial_index__": 0}, {"x": 0, "__trial_index__": 1},
                           {"x": 0, "__trial_index__": 2}]
    assert configs[3] == {"x": 1, "__trial_index__": 0}  # the wrapped searcher was asked twice
    assert repeater.max_trials(9) == 9
    repeater.on_trial_result("t0", {"loss": 9.0})  # intermediate results stay with the repeater
    repeater.on_trial_complete("t0", {"loss": 1.0})
    repeater.on_trial_complete("t2", {"loss": 3.0})
    assert repeater.searcher.told == []  # not until every repeat has ended
    repeater.save(str(tmp_path / "state"))
    restored = Repeater(Counting(), repeat=3)
    restored.set_search_properties(None, None, at.Space({}))
    restored.restore(str(tmp_path / "state"))
    restored.on_trial_complete("t1", {"loss": 5.0})
    assert restored.searcher.told == [("t0", {"loss": 3.0}, False)]  # under the first repeat's id
    with pytest.raises(ValueError, match="repeat must be an integer >= 1"):
        Repeater(Counting(), repeat=0)


@pytest.mark.timeout(60)
def test_hyperband_with_a_concurrency_limiter_closes_a_bracket_it_cannot_fill(storage):
    """Ray's bohb_example: 2 trials at once, brackets of 4. The limiter counts the paused trials
    of the bracket, so the bracket would wait for ever; it closes with what it has instead."""
    from asynctune.compat.ray.tune.search.bohb import TuneBOHB
    search = ConcurrencyLimiter(TuneBOHB(seed=0), max_concurrent=2)
    results = fit(MyTrainableClass, storage, num_samples=6, metric="episode_reward_mean", mode="max",
                  param_space={"width": tune.uniform(1, 20), "height": tune.uniform(-10, 10)},
                  scheduler=HyperBandForBOHB(max_t=4, reduction_factor=2), search_alg=search,
                  stop={"training_iteration": 4})
    assert len(results) == 6 and results.num_terminated == 6
    assert any(r.metrics["training_iteration"] == 4 for r in results)
    assert any(r.metrics["training_iteration"] < 4 for r in results)  # halving happened in closed brackets


@pytest.mark.timeout(60)
def test_asynctunes_own_hyperband_with_a_concurrency_limiter_does_not_wait_for_ever(storage):
    analysis = at.run(resumable_curve, config={"x": at.uniform(1, 10)}, num_samples=6, metric="loss", mode="min",
                      scheduler=at.HyperBandScheduler(max_t=4, reduction_factor=2),
                      search_alg=at.ConcurrencyLimiter(at.RandomSearch(seed=0), max_concurrent=2),
                      storage_path=storage, verbose=0)
    assert len(analysis.trials) == 6 and all(t.status.is_finished and t.status is not at.Status.ERROR for t in analysis.trials)


def test_searchers_and_schedulers_by_rays_names(storage):
    pytest.importorskip("optuna")
    analysis = tune.run(resumable_curve, config={"x": tune.uniform(1, 2)}, metric="loss", mode="min", num_samples=3,
                        search_alg="optuna", scheduler="asha", storage_path=storage, verbose=0)
    assert len(analysis.trials) == 3 and analysis.best_result["loss"] < 2
    config = tune.TuneConfig(search_alg="random", scheduler="hyperband")
    assert isinstance(config.search_alg, BasicVariantGenerator) and isinstance(config.scheduler, HyperBandScheduler)
    assert isinstance(tune.schedulers.create_scheduler("async_hyperband", max_t=9), ASHAScheduler)
    assert tune.search.create_searcher("variant_generator", random_state=1).seed == 1
    with pytest.raises(ValueError, match="unknown search_alg name 'optima'.*'optuna'"):
        tune.TuneConfig(search_alg="optima")
    with pytest.raises(UnsupportedRayFeature, match="PB2.*PopulationBasedTraining"):
        tune.TuneConfig(scheduler="pb2")
    with pytest.raises(UnsupportedRayFeature, match="AxSearch"):
        tune.search.create_searcher("ax")
