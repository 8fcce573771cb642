"""Issue 30: schedulers that behave as their papers and peers say (fixes 1-6).

Each test here failed on the code before its fix; the issue's item number is in its name.
Lifecycle tests run on the SimulatedExecutor (virtual time) through `asynctune.run_async`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import cloudpickle
import pytest

import asynctune as at

from tests.helpers.scheduler_runs import simulate


# 1. Paused trials are not live for ConcurrencyLimiter ------------------------------------------

async def test_1_bohb_with_a_concurrency_limit_fills_its_brackets_and_finishes(storage):
    analysis = await simulate(
        storage, num_samples=32, workers=4,
        search_alg=at.ConcurrencyLimiter(at.BOHBSearch(seed=0), max_concurrent=4),
        scheduler=at.HyperBandScheduler(max_t=27, reduction_factor=3))
    assert len(analysis.trials) == 32
    assert all(t.status.is_finished and t.status is not at.Status.ERROR for t in analysis.trials)
    # the first bracket (s=3: 27 trials at r=1) filled, so its best trials reached max_t
    assert max(t.last_result["training_iteration"] for t in analysis.trials) == 27


async def test_1_promotion_asha_with_a_concurrency_limit_does_not_stall(storage):
    analysis = await simulate(
        storage, num_samples=16, workers=4,
        search_alg=at.ConcurrencyLimiter(at.RandomSearch(seed=0), max_concurrent=2),
        scheduler=at.ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3, variant="promotion"))
    assert len(analysis.trials) == 16
    assert all(t.status.is_finished and t.status is not at.Status.ERROR for t in analysis.trials)
    assert max(t.last_result["training_iteration"] for t in analysis.trials) == 27


def test_1_the_limiter_does_not_count_paused_trials_but_counts_resumed_ones():
    limiter = at.ConcurrencyLimiter(at.RandomSearch(seed=0), max_concurrent=1)
    limiter.set_search_properties("loss", "min", at.Space({"x": at.uniform(0, 1)}), seed=0)
    limiter.max_trials(10)  # the controller's call: ten samples
    assert isinstance(limiter.suggest("a"), dict)
    assert limiter.suggest("b") is None
    limiter.on_trial_paused("a")
    assert isinstance(limiter.suggest("b"), dict)
    limiter.on_trial_paused("b")
    limiter.on_trial_resumed("a")
    assert limiter.suggest("c") is None  # "a" runs again
    limiter.on_trial_complete("a")
    assert isinstance(limiter.suggest("c"), dict)


# 2. PBT time-shares a population larger than the workers ------------------------------------

def pbt(**kwargs) -> at.PopulationBasedTraining:
    return at.PopulationBasedTraining(perturbation_interval=5, hyperparam_mutations={"x": at.randint(0, 16)},
                                      seed=0, **kwargs)


async def test_2_pbt_population_four_times_the_workers_trains_together(storage):
    analysis = await simulate(storage, workers=2, num_samples=8, stop={"training_iteration": 20},
                              checkpoint_frequency=1, scheduler=pbt())
    rows = sorted((r for t in analysis.trials for r in analysis.trial_results(t.trial_id)),
                  key=lambda r: (r["timestamp"], r["trial_id"]))
    # Jaderberg et al. / Ray Tune: members train an interval each, in turns. No trial starts its
    # third interval (iteration 11) before every member has trained its first (reached 5).
    first_eleven = next(i for i, r in enumerate(rows) if r["training_iteration"] == 11)
    reached_5 = {r["trial_id"] for r in rows[:first_eleven] if r["training_iteration"] == 5}
    assert reached_5 == {t.trial_id for t in analysis.trials}
    # every member trains about as much as the others (the old code: [6, 6, 25, 39]-like shares)
    own = [len(analysis.trial_results(t.trial_id)) for t in analysis.trials]
    assert min(own) >= 10, own
    assert all(t.status is at.Status.TERMINATED for t in analysis.trials)
    decisions = [d["decision"] for d in analysis.decisions()]
    assert decisions.count("PAUSE") >= 8  # each member yielded its worker at least once


def counting(config):
    """A real trainable: counts on from its checkpoint (its own, after a pause; a donor's, after a clone)."""
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    while True:
        count += 1
        at.report(score=config["x"] * count, count=count, checkpoint={"count": count})


def test_2_pbt_time_shares_real_worker_processes(storage):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this module
    scheduler = at.PopulationBasedTraining(perturbation_interval=3, hyperparam_mutations={"x": at.uniform(0, 1)},
                                           seed=0)
    analysis = at.run(counting, config={"x": at.uniform(0, 1)}, num_samples=4, max_concurrent_trials=2,
                      metric="score", mode="max", stop={"training_iteration": 9}, scheduler=scheduler, seed=0,
                      storage_path=storage, verbose=0)
    # (The order of results across processes depends on how fast each worker starts: the
    # simulated test above checks the turns; here, that real pauses and resumes make them.)
    for trial in analysis.trials:
        own = analysis.trial_results(trial.trial_id)
        # it trained most of its 9 iterations itself, across its pauses (a clone may skip the
        # few its donor was ahead); the old code's last members cloned the first ones' finished
        # checkpoints after 3 results of their own
        iterations = [r["training_iteration"] for r in own]
        assert len(own) >= 6 and iterations[-1] == 9 and iterations == sorted(set(iterations)), iterations
        assert all(r["count"] == r["training_iteration"] for r in own)
    assert [d["decision"] for d in analysis.decisions()].count("PAUSE") >= 4


# 3. PBT never clones a trial that ended (past stop=) -----------------------------------------

def _ended(trial, sched):
    """Its stop= was reached and its end landed: on_trial_complete."""
    trial.status = at.Status.TERMINATED
    sched.on_trial_complete(trial, trial.last_result)


def _ending(trial, sched):
    """Its stop= was reached on this result (the controller set `ending`); its end has not landed yet."""
    trial.ending = True


@pytest.mark.parametrize("end", [_ended, _ending], ids=["ended", "ending"])
def test_3_a_trial_past_its_stop_criterion_is_no_donor(end):
    sched = at.PopulationBasedTraining(metric="acc", mode="max", perturbation_interval=1,
                                       hyperparam_mutations={"lr": at.uniform(0, 1)}, seed=0)
    done, late = at.Trial("t0", {"lr": 0.5}, index=0), at.Trial("t1", {"lr": 0.5}, index=1)
    for trial in (done, late):
        sched.on_trial_add(trial)
    sched.on_searcher_finished()
    done.checkpoint = "/exp/t0/checkpoint_000040"
    done.last_result = {"training_iteration": 40, "acc": 1.0}
    sched.on_trial_result(done, done.last_result)
    end(done, sched)
    late.checkpoint = "/exp/t1/checkpoint_000005"
    assert sched.on_trial_result(late, {"training_iteration": 5, "acc": 0.0}) is at.CONTINUE
    assert late.lineage == []


async def test_3_no_trial_reports_past_stop(storage):
    # the last two trials are the worst (higher x): they exploit when they reach their first interval
    analysis = await simulate(storage, workers=2, num_samples=1, stop={"training_iteration": 12},
                              config={"x": at.grid_search([0, 1, 14, 15])}, checkpoint_frequency=1,
                              scheduler=pbt())
    for trial in analysis.trials:
        assert max(r["training_iteration"] for r in analysis.trial_results(trial.trial_id)) == 12


# 4. PBT samples keys that only hyperparam_mutations names -----------------------------------

async def test_4_keys_only_in_hyperparam_mutations_are_sampled_for_each_trial(storage):
    scheduler = at.PopulationBasedTraining(
        perturbation_interval=5, seed=0,
        hyperparam_mutations={"x": at.randint(0, 16), "momentum": [0.8, 0.9, 0.99], "decay": lambda: 0.5,
                              "opt": {"beta": at.uniform(0.1, 0.2)}})
    analysis = await simulate(storage, workers=2, num_samples=4, config={}, stop={"training_iteration": 6},
                              checkpoint_frequency=1, scheduler=scheduler, seed=1)
    configs = [t.config for t in analysis.trials]
    assert len(configs) == 4
    for config in configs:
        assert 0 <= config["x"] < 16 and config["momentum"] in (0.8, 0.9, 0.99)
        assert config["decay"] == 0.5 and 0.1 <= config["opt"]["beta"] <= 0.2
    assert len({c["x"] for c in configs}) > 1  # sampled per trial, not one value for all


def test_2_pbt_without_a_population_size_is_refused_before_any_trial(storage):
    with pytest.raises(ValueError, match="PopulationBasedTraining needs a population size"):
        at.run(lambda config: None, config={"x": at.uniform(0, 1)}, num_samples=-1, metric="loss", mode="min",
               scheduler=pbt(), storage_path=storage, verbose=0)
    assert not os.path.exists(storage)


# 5. ASHA: a NaN in a rung does not open the cutoff -------------------------------------------

@pytest.mark.parametrize("diverged", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_5_asha_keeps_the_top_quantile_when_a_rung_holds_a_diverged_result(diverged):
    sched = at.ASHAScheduler(metric="loss", mode="min", max_t=100, grace_period=1, reduction_factor=4)
    a, b, c = (at.Trial(f"t{i}", {}, index=i, status=at.Status.RUNNING) for i in range(3))
    for trial in (a, b, c):
        sched.on_trial_add(trial)
    assert sched.on_trial_result(a, {"training_iteration": 1, "loss": 450.0}) is at.CONTINUE
    assert sched.on_trial_result(b, {"training_iteration": 1, "loss": diverged}) is at.STOP  # the worst
    # the rung holds {450, NaN}: a worse trial is not in the top 1/4 and stops
    assert sched.on_trial_result(c, {"training_iteration": 1, "loss": 500.0}) is at.STOP


# 6. HyperBand's stops of paused trials are recorded; bracket order is the user's choice -------

async def test_6_every_trial_hyperband_stops_while_paused_has_a_stop_in_decisions_jsonl(storage):
    analysis = await simulate(storage, workers=3, num_samples=1, config={"x": at.grid_search(list(range(9)))},
                              scheduler=at.HyperBandScheduler(max_t=9, reduction_factor=3))
    last = {}
    for decision in analysis.decisions():
        last[decision["trial_id"]] = decision
    # bracket s=2 (9 trials, r=1): 6 stop at rung 1, 2 at rung 3, 1 reaches max_t
    early = [t for t, d in last.items() if d["decision"] == "STOP" and d.get("early")]
    assert len(early) == 8, last
    assert {t.trial_id for t in analysis.trials} == set(last)


@pytest.mark.parametrize("order, first_s", [("aggressive_first", 2), ("gentle_first", 0)])
async def test_6_the_bracket_order_is_the_users_choice(storage, order, first_s):
    scheduler = at.HyperBandScheduler(max_t=9, reduction_factor=3, bracket_order=order)
    await simulate(storage, workers=3, num_samples=12, scheduler=scheduler)
    assert [b.s for b in scheduler.brackets][:2] == [first_s, first_s + (1 if first_s == 0 else -1)]


def test_6_a_bad_bracket_order_is_named():
    with pytest.raises(ValueError, match="bracket_order must be one of"):
        at.HyperBandScheduler(bracket_order="random")


class _OwnSpace(at.Searcher):
    """A searcher with a space of its own, which knows nothing of PBT's mutations."""

    def suggest(self, trial_id):
        return {"y": 1.0}


async def test_4_a_mutated_key_no_trial_can_have_ends_the_run_with_one_error(storage):
    scheduler = at.PopulationBasedTraining(perturbation_interval=5, hyperparam_mutations={"x": at.randint(0, 16)})
    with pytest.raises(ValueError) as caught:
        await simulate(storage, num_samples=4, search_alg=_OwnSpace(), scheduler=scheduler)
    assert str(caught.value) == ("hyperparam_mutations['x'] is not in the config of trial trial_00000: "
                                 "PBT can only mutate hyperparameters every trial has")
    assert not isinstance(caught.value, BaseExceptionGroup)
