"""Expectations taken from the peers' own scheduler tests, written anew against asynctune's public
scheduler interface (issue 30). Each test names the peer test it follows:

* Ray Tune, python/ray/tune/tests/test_trial_scheduler.py (EarlyStoppingSuite: median stopping;
  AsyncHyperBandSuite: ASHA; HyperbandSuite) and test_trial_scheduler_pbt.py
  (PopulationBasedTestingSuite);
* Syne Tune, tst/schedulers/test_hyperband.py and test_hyperband_sychronous.py.

Where asynctune deliberately differs, the test says so and docs/schedulers/*.md explains it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import asynctune as at
from asynctune import CONTINUE, PAUSE, STOP, Mutate, Status, Trial

from tests.helpers.scheduler_runs import simulate
from tests.helpers.schedulers import RecordingControl, decide
from tests.unit.algorithms.schedulers.test_hyperband import reach_rung


def result(t: float, reward: float) -> dict:
    """Ray's helper: time and iteration t, reward `reward` (mode="max")."""
    return {"time_total_s": t, "training_iteration": int(t), "reward": reward}


def trial(i: int, config: dict | None = None) -> Trial:
    return Trial(f"t{i}", dict(config or {}), index=i, status=Status.RUNNING)


def two_trials(sched) -> tuple[Trial, Trial]:
    """Ray's basicSetup: t1 reports i * 100 at t = 0..9 (mean 450, max 900); t2 450 at t = 0..4."""
    t1, t2 = trial(1), trial(2)
    for t in (t1, t2):
        sched.on_trial_add(t)
    for i in range(10):
        assert sched.on_trial_result(t1, result(i, i * 100)) is CONTINUE
    for i in range(5):
        assert sched.on_trial_result(t2, result(i, 450)) is CONTINUE
    return t1, t2


def finish(sched, t: Trial, last: dict) -> None:
    """Ray passes a last result to on_trial_complete; asynctune's last result is the last one reported."""
    sched.on_trial_result(t, last)
    t.status = Status.TERMINATED
    sched.on_trial_complete(t, last)


# Median stopping: Ray's EarlyStoppingSuite -----------------------------------------------------

def median(**kwargs) -> at.MedianStoppingRule:
    return at.MedianStoppingRule(metric="reward", mode="max", grace_period=0, min_samples_required=1, **kwargs)


def test_median_constant_performance_follows_testMedianStoppingConstantPerf():
    rule = median()
    t1, t2 = two_trials(rule)
    finish(rule, t1, result(10, 1000))
    assert rule.on_trial_result(t2, result(5, 450)) is CONTINUE
    assert rule.on_trial_result(t2, result(6, 0)) is CONTINUE
    assert rule.on_trial_result(t2, result(10, 450)) is STOP  # t1's average at 10 is 500


@pytest.mark.parametrize("make", [
    lambda: at.MedianStoppingRule(metric="reward", mode="max", grace_period=2.5, min_samples_required=1),
    lambda: at.ASHAScheduler(metric="reward", mode="max", brackets=1, grace_period=2.5, reduction_factor=3),
], ids=["median-testMedianStoppingGracePeriod", "asha-testAsyncHBGracePeriod"])
def test_grace_period_follows_testMedianStoppingGracePeriod_and_testAsyncHBGracePeriod(make):
    sched = make()
    t1, t2 = two_trials(sched)
    finish(sched, t1, result(10, 1000))
    finish(sched, t2, result(10, 1000))
    t3 = trial(3)
    sched.on_trial_add(t3)
    assert sched.on_trial_result(t3, result(1, 10)) is CONTINUE
    assert sched.on_trial_result(t3, result(2, 10)) is CONTINUE
    assert sched.on_trial_result(t3, result(3, 10)) is STOP


def test_median_min_samples_follows_testMedianStoppingMinSamples():
    rule = at.MedianStoppingRule(metric="reward", mode="max", grace_period=0, min_samples_required=2)
    t1, t2 = two_trials(rule)
    finish(rule, t1, result(10, 1000))
    t3 = trial(3)
    rule.on_trial_add(t3)
    assert rule.on_trial_result(t3, result(5, 10)) is CONTINUE  # only t1 has reached step 5
    finish(rule, t2, result(5, 1000))
    # Ray judges t3's repeated step 5 again; asynctune judges a step once per trial (a repeat is a
    # restart from an older checkpoint), so a fresh trial at step 5 shows the rule now applies.
    t4 = trial(4)
    rule.on_trial_add(t4)
    assert rule.on_trial_result(t4, result(5, 10)) is STOP


@pytest.mark.parametrize("hard_stop, losing", [(True, STOP), (False, PAUSE)], ids=["hard", "soft"])
def test_median_uses_the_median_follows_testMedianStoppingUsesMedian_and_SoftStop(hard_stop, losing):
    rule = median(hard_stop=hard_stop)
    t1, t2 = two_trials(rule)
    finish(rule, t1, result(10, 1000))
    finish(rule, t2, result(10, 1000))
    t3 = trial(3)
    rule.on_trial_add(t3)
    assert rule.on_trial_result(t3, result(1, 260)) is CONTINUE  # median of 50 and 450 is 250
    assert rule.on_trial_result(t3, result(2, 260)) is losing  # median of 100 and 450 is 275


def test_median_mode_min_follows_testAlternateMetricsMin():
    rule = at.MedianStoppingRule(metric="loss", mode="min", grace_period=0, min_samples_required=1)
    t1, t2 = trial(1), trial(2)
    for i in range(10):
        assert rule.on_trial_result(t1, {"training_iteration": i, "loss": -i * 100}) is CONTINUE
    for i in range(5):
        assert rule.on_trial_result(t2, {"training_iteration": i, "loss": -450}) is CONTINUE
    assert rule.on_trial_result(t2, {"training_iteration": 5, "loss": -450}) is CONTINUE
    assert rule.on_trial_result(t2, {"training_iteration": 6, "loss": 0}) is CONTINUE


# ASHA, stopping: Ray's AsyncHyperBandSuite and Syne Tune's test_hyperband.py -------------------

def asha(**kwargs) -> at.ASHAScheduler:
    return at.ASHAScheduler(metric="reward", mode="max", brackets=1, **kwargs)


def test_asha_uses_the_percentile_follows_testAsyncHBUsesPercentile():
    sched = asha(grace_period=1, max_t=10, reduction_factor=2)
    two_trials(sched)
    t3 = trial(3)
    sched.on_trial_add(t3)
    assert sched.on_trial_result(t3, result(1, 260)) is STOP  # rung 1 holds 100 and 450
    assert sched.on_trial_result(t3, result(2, 260)) is STOP  # rung 2 holds 200 and 450


def test_asha_nan_percentile_follows_testAsyncHBNanPercentile():
    sched = asha(grace_period=1, max_t=10, reduction_factor=2)
    t1, t2 = trial(1), trial(2)
    for i in range(10):
        sched.on_trial_result(t1, result(i, 450))
    for i in range(10):
        sched.on_trial_result(t2, result(i, math.nan))
    t3 = trial(3)
    sched.on_trial_add(t3)
    assert sched.on_trial_result(t3, result(1, 260)) is STOP  # the NaN does not lower the cutoff
    assert sched.on_trial_result(t3, result(2, 260)) is STOP


def test_asha_stops_every_trial_at_max_t_follows_testAsyncHBAllCompletes():
    sched = at.ASHAScheduler(metric="reward", mode="max", max_t=10, brackets=10, seed=0)
    trials = [trial(i) for i in range(10)]
    for t in trials:
        sched.on_trial_add(t)
    assert [sched.on_trial_result(t, result(10, -2)) for t in trials] == [STOP] * 10


def test_asha_stops_past_max_t_follows_testAsyncHBOnComplete():
    sched = asha()  # max_t=100
    _, t2 = two_trials(sched)
    assert sched.on_trial_result(t2, result(101, 0)) is STOP


def test_asha_top_third_continues_follows_synetune_test_register_pending():
    # Syne Tune: grace_period=3, reduction_factor=3, mode="min": 1.0, 0.9, 0.8 continue, 1.2 stops.
    sched = at.ASHAScheduler(metric="metric", mode="min", grace_period=3, reduction_factor=3, max_t=27)
    decisions = []
    for i, value in enumerate([1.0, 0.9, 0.8, 1.2]):
        t = trial(i)
        sched.on_trial_add(t)
        decisions.append(sched.on_trial_result(t, {"training_iteration": 3, "metric": value}))
    assert decisions == [CONTINUE, CONTINUE, CONTINUE, STOP]


@pytest.mark.parametrize("run", range(20))
def test_asha_cutoff_is_numpys_quantile_follows_synetune_test_quantile_hyperband_stopping(run):
    # Syne Tune checks the rung quantile against np.quantile on random data; here through decisions:
    # a trial just above the (1 - 1/eta) quantile continues, one just below stops.
    rng = np.random.default_rng(31415938 + run)
    values = rng.normal(size=int(rng.integers(2, 200)))
    eta = float(rng.uniform(2, 6))
    cutoff = float(np.quantile(values, 1 - 1 / eta))
    for offset, expected in ((1e-9, CONTINUE), (-1e-9, STOP)):
        sched = at.ASHAScheduler(metric="acc", mode="max", grace_period=1, reduction_factor=eta, max_t=1000)
        for i, value in enumerate(values):
            t = trial(i)
            sched.on_trial_add(t)
            sched.on_trial_result(t, {"training_iteration": 1, "acc": float(value)})
        probe = trial(len(values))
        sched.on_trial_add(probe)
        assert sched.on_trial_result(probe, {"training_iteration": 1, "acc": cutoff + offset}) is expected


# ASHA, promotion: Syne Tune's promotion rung system (test_hyperband_scheduler_type) ----------------

async def test_asha_promotion_pauses_and_resumes_in_a_run_follows_synetune_does_pause_resume(storage):
    analysis = await simulate(storage, workers=2, num_samples=1, config={"x": at.grid_search(list(range(9)))},
                              scheduler=at.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3,
                                                         variant="promotion"))
    decisions = [d["decision"] for d in analysis.decisions()]
    assert "PAUSE" in decisions
    reached = sorted(t.last_result["training_iteration"] for t in analysis.trials)
    # a promoted trial ran on from its rung: the best (x=0) reached max_t
    assert reached[-1] == 9 and analysis.best_config["x"] == 0


# HyperBand: Ray's HyperbandSuite and Syne Tune's test_hyperband_sychronous.py -------------------

async def hyperband_bracket(mode: str):
    """Bracket s=2 of max_t=9, eta=3: 9 trials at r=1, rungs at 1 and 3, R=9."""
    sched = at.HyperBandScheduler(metric="acc", mode=mode, max_t=9, reduction_factor=3)
    trials = [trial(i) for i in range(9)]
    control = RecordingControl(trials)
    await sched.start(control)
    for t in trials:
        sched.on_trial_add(t)
    return sched, control, trials


async def test_hyperband_bracket_follows_synetune_test_hyperband_bracket():
    # Syne Tune's results (mode="min"): rung 0 {0: 3, 1: 5, 2: 1, 3: 4, 4: 9, 5: 6, 6: 2, 7: 7, 8: 8}.
    # Syne Tune's rung sizes are (9, 4, 1); asynctune keeps floor(n / eta) = 3 as the paper does
    # (docs/schedulers/hyperband.md), so trial 3 (4.0) stops here too; the winner is the same.
    sched, control, t = await hyperband_bracket("min")
    try:
        decisions = await reach_rung(sched, t, 1, [3.0, 5.0, 1.0, 4.0, 9.0, 6.0, 2.0, 7.0, 8.0])
        assert decisions == [PAUSE] * 8 + [STOP]  # the last result completes the rung; 8.0 is not kept
        assert sorted(a[1] for a in control.actions if a[0] == "stop") == ["t1", "t3", "t4", "t5", "t7"]
        assert sorted(a[1] for a in control.actions if a[0] == "resume") == ["t0", "t2", "t6"]
        for survivor in (t[0], t[2], t[6]):
            survivor.status = Status.RUNNING
        decisions = await reach_rung(sched, [t[2], t[6], t[0]], 3, [3.1, 3.0, 2.9])
        assert decisions == [PAUSE, PAUSE, CONTINUE]  # t0 completes the rung and is the best
        assert ("stop", "t2") in control.actions and ("stop", "t6") in control.actions
        assert await decide(sched, t[0], {"training_iteration": 9, "acc": 1.0}) is STOP  # at R
    finally:
        await sched.close()


async def test_successive_halving_keeps_the_top_third_follows_ray_testSuccessiveHalving():
    # Ray: results 0..n-1 in order, the last one keeps running; each halving keeps n / eta. Ray
    # rounds up (ceil), asynctune down (floor, the paper): 9 -> 3 -> 1 either way here.
    sched, control, t = await hyperband_bracket("max")
    try:
        decisions = await reach_rung(sched, t, 1, list(range(9)))
        assert decisions[:8] == [PAUSE] * 8 and decisions[8] is CONTINUE
        kept = [t[6], t[7], t[8]]
        assert sorted(a[1] for a in control.actions if a[0] == "resume") == ["t6", "t7"]
        for survivor in kept:
            survivor.status = Status.RUNNING
        decisions = await reach_rung(sched, kept, 3, [0, 1, 2])
        assert decisions == [PAUSE, PAUSE, CONTINUE]
    finally:
        await sched.close()


async def test_hyperband_fills_its_brackets_in_the_chosen_order_follows_ray_testConfigSameEta():
    # Ray's band for max_t=81, eta=3 is (5, 81), (8, 27), (15, 9), (34, 3), (81, 1): gentlest first.
    for order, sizes in (("gentle_first", [(5, 81), (8, 27), (15, 9), (34, 3), (81, 1)]),
                         ("aggressive_first", [(81, 1), (34, 3), (15, 9), (8, 27), (5, 81)])):
        sched = at.HyperBandScheduler(metric="m", mode="max", max_t=81, reduction_factor=3, bracket_order=order)
        await sched.start(RecordingControl([]))
        try:
            for i in range(sum(n for n, _ in sizes)):
                sched.on_trial_add(trial(i))
            await sched._wait_settled()
            assert [(b.n, b.r) for b in sched.brackets] == sizes, order
        finally:
            await sched.close()


# BOHB with a concurrency limit: Ray's bohb_example.py setup (ConcurrencyLimiter, max_concurrent=4)

async def test_bohb_with_a_concurrency_limit_learns_at_every_budget_follows_ray_bohb_example(storage):
    searcher = at.BOHBSearch(seed=0)
    analysis = await simulate(storage, workers=4, num_samples=40,
                              search_alg=at.ConcurrencyLimiter(searcher, max_concurrent=4),
                              scheduler=at.HyperBandScheduler(max_t=27, reduction_factor=3))
    assert len(analysis.trials) == 40 and all(t.status.is_finished and t.status is not Status.ERROR for t in analysis.trials)
    # the bracket s=3 filled (27 trials at r=1): BOHB observed every rung's budget
    assert {1.0, 3.0, 9.0, 27.0} <= set(searcher.budget_observations)
    assert len(searcher.budget_observations[1.0]) >= 27


# PBT: Ray's PopulationBasedTestingSuite ----------------------------------------------------------

def pbt_population(n: int = 5, **kwargs) -> tuple[at.PopulationBasedTraining, list[Trial]]:
    """Ray's basicSetup: 5 trials, perturbation_interval=10, scores 0, 50, 100, 150, 200 at t=10."""
    kwargs.setdefault("hyperparam_mutations", {"float_factor": [1.0, 100.0], "int_factor": [10, 20]})
    sched = at.PopulationBasedTraining(metric="reward", mode="max", perturbation_interval=10, seed=0, **kwargs)
    trials = [trial(i, {"float_factor": 2.0, "int_factor": 10, "const_factor": 3, "id": i}) for i in range(n)]
    sched.control = RecordingControl(trials)
    for t in trials:
        sched.on_trial_add(t)
    sched.on_searcher_finished()
    for i, t in enumerate(trials):
        t.checkpoint = f"/exp/{t.trial_id}/checkpoint_10"
        assert sched.on_trial_result(t, result(10, 50 * i)) is CONTINUE  # ranked one by one, best so far
    return sched, trials


def test_pbt_exploits_the_top_quantile_follows_testPerturbsLowPerformingTrials():
    sched, trials = pbt_population()
    # quantile 0.25 of 5: ceil(1.25) = 2 in each quantile: trials 0 and 1 exploit trials 3 or 4
    for t in trials:
        t.checkpoint = f"/exp/{t.trial_id}/checkpoint_20"
    decisions = [sched.on_trial_result(t, result(20, 50 * i)) for i, t in enumerate(trials)]
    assert [type(d) for d in decisions[2:]] == [type(CONTINUE)] * 3
    for d in decisions[:2]:
        assert isinstance(d, Mutate) and d.checkpoint.split("/")[2] in ("t3", "t4")
        assert d.config["const_factor"] == 3 and d.config["id"] in (3, 4)  # the donor's config


def explored(config: dict, seed: int, **kwargs) -> dict:
    """The config the worse of two trials with `config` gets when it exploits the better one."""
    sched = at.PopulationBasedTraining(metric="reward", mode="max", perturbation_interval=1, seed=seed, **kwargs)
    low, high = trial(0, config), trial(1, config)
    sched.control = RecordingControl([low, high])
    for t in (low, high):
        sched.on_trial_add(t)
        t.checkpoint = f"/exp/{t.trial_id}/c"
    sched.on_searcher_finished()
    sched.on_trial_result(high, result(1, 10))
    decision = sched.on_trial_result(low, result(1, 0))
    assert isinstance(decision, Mutate)
    return decision.config


def test_pbt_explore_perturbs_by_the_factors_follows_testPerturbationValues():
    configs = [explored({"float_factor": 100.0, "int_factor": 10}, seed, resample_probability=0.0,
                        hyperparam_mutations={"float_factor": at.uniform(0, 1000), "int_factor": at.randint(0, 1000)})
               for seed in range(40)]
    assert {round(c["float_factor"], 6) for c in configs} == {80.0, 120.0}
    assert {c["int_factor"] for c in configs} == {8, 12}
    assert {type(c["float_factor"]) for c in configs} == {float}


def test_pbt_resampling_follows_testPerturbWithResample():
    configs = [explored({"v": 10, "f": 1}, seed, resample_probability=1.0,
                        hyperparam_mutations={"v": [10, 100], "f": lambda: 7}) for seed in range(30)]
    assert {c["v"] for c in configs} == {10, 100}
    assert {c["f"] for c in configs} == {7}  # a callable is called to resample


def test_pbt_burn_in_follows_testBurnInPeriod():
    sched = at.PopulationBasedTraining(metric="error", mode="min", perturbation_interval=5, burn_in_period=50,
                                       hyperparam_mutations={"ignored": [1]}, seed=0)
    trials = [trial(i, {"num": i + 1, "ignored": 1}) for i in range(4)]
    sched.control = RecordingControl(trials)
    for t in trials:
        sched.on_trial_add(t)
        t.checkpoint = f"/exp/{t.trial_id}/c"
    sched.on_searcher_finished()
    for step in (1, 30):  # within burn-in: no exploit
        for t, error in zip(trials, (50, 50, 10, 100)):
            assert sched.on_trial_result(t, {"training_iteration": step, "error": error}) is CONTINUE
    decisions = [sched.on_trial_result(t, {"training_iteration": 50, "error": error})
                 for t, error in zip(trials, (50, 50, 10, 100))]
    assert isinstance(decisions[3], Mutate) and decisions[3].config["num"] == 3  # the worst clones the best


def test_pbt_yields_time_to_waiting_trials_follows_testYieldsTimeToOtherTrials():
    sched, trials = pbt_population()
    trials[0].status = Status.PENDING  # waiting for a worker
    assert sched.on_trial_result(trials[1], result(20, 1000)) is PAUSE
    assert sched.choose_trial_to_run([trials[0]]) is trials[0]


def test_pbt_runs_the_trial_most_behind_follows_testSchedulesMostBehindTrialToRun():
    sched, trials = pbt_population()
    for t, (time, score_) in zip(trials, [(800, 1000), (700, 1001), (600, 1002), (500, 1003), (700, 1004)]):
        sched.on_trial_result(t, result(time, score_))
    for t in trials:
        t.status = Status.PAUSED
    assert sched.choose_trial_to_run(trials) is trials[3]


async def test_pbt_time_shares_in_a_run_follows_ray_pbt_examples_with_two_cpus(storage):
    # Ray's PBT examples run a population of 4+ on 2 CPUs: every member trains in turns.
    analysis = await simulate(storage, workers=2, num_samples=8, stop={"training_iteration": 15},
                              checkpoint_frequency=1,
                              scheduler=at.PopulationBasedTraining(perturbation_interval=5, seed=0,
                                                                   hyperparam_mutations={"x": at.randint(0, 16)}))
    own = sorted(len(analysis.trial_results(t.trial_id)) for t in analysis.trials)
    assert own[0] >= 10 and own[-1] <= 15, own
