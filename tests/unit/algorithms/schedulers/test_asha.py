"""ASHA (Li et al. 2020): rungs, the stopping rule, and the promotion rule, on scripted results."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

import asynctune as at
from asynctune import CONTINUE, PAUSE, STOP, ASHAScheduler, AsyncHyperBandScheduler, Status, Trial
from asynctune.algorithms.schedulers.rungs import SortedValues, rung_milestones

from tests.helpers.scheduler_runs import simulate
from tests.helpers.schedulers import RecordingControl, Simulation, make_trials


def attach(scheduler: ASHAScheduler, trials: list[Trial]) -> RecordingControl:
    control = RecordingControl(trials)
    scheduler.control = control
    for trial in trials:
        scheduler.on_trial_add(trial)
    return control


def result(it: float, acc: float) -> dict:
    return {"training_iteration": it, "acc": acc}


@pytest.mark.parametrize("kwargs, message", [
    ({"reduction_factor": 1}, "reduction_factor must be a number > 1"),
    ({"reduction_factor": 0.5}, "reduction_factor must be a number > 1"),
    ({"reduction_factor": True}, "reduction_factor must be a number > 1"),
    ({"grace_period": 200}, "grace_period must be <= max_t"),
    ({"grace_period": 0}, "grace_period must be a positive number"),
    ({"max_t": -1}, "max_t must be a positive number"),
    ({"brackets": 0}, "brackets must be an integer >= 1"),
    ({"variant": "eager"}, "variant must be one of"),
    ({"time_attr": ""}, "time_attr must be the name of a result field"),
], ids=["eta-1", "eta-half", "eta-bool", "grace-above-max-t", "grace-0", "max-t-negative", "brackets-0",
        "unknown-variant", "empty-time-attr"])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ASHAScheduler(metric="acc", mode="max", **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"reduction_factor": 2.5}, {"grace_period": 100}, {"brackets": 3}, {"variant": "promotion"},
    {"time_attr": "time_total_s", "max_t": 3600.0, "grace_period": 0.5},
], ids=["float-eta", "grace-equals-max-t", "3-brackets", "promotion", "seconds"])
def test_accepts_good_arguments(kwargs):
    ASHAScheduler(metric="acc", mode="max", **kwargs).validate()


def test_alias_is_the_same_class():
    assert AsyncHyperBandScheduler is ASHAScheduler


@pytest.mark.parametrize("grace, eta, max_t, bracket, expected", [
    (1, 4, 100, 0, [1, 4, 16, 64]),
    (1, 4, 100, 1, [4, 16, 64]),
    (1, 3, 81, 0, [1, 3, 9, 27]),  # R itself is no rung: trials stop there
    (10, 2, 50, 0, [10, 20, 40]),
    (5, 3, 5, 0, []),
], ids=["ray-default", "bracket-1", "eta-3", "grace-10", "grace-is-max-t"])
def test_rung_milestones(grace, eta, max_t, bracket, expected):
    assert rung_milestones(grace, eta, max_t, bracket) == expected


@pytest.mark.parametrize("n, q", [(1, 0.5), (2, 0.5), (7, 2 / 3), (10, 0.75), (101, 0.25)],
                         ids=["one", "two", "seven-eta3", "ten-eta4", "many"])
def test_cutoff_quantile_matches_numpy(n, q):
    values = np.random.default_rng(n).normal(size=n)
    sorted_values = SortedValues()
    for v in values:
        sorted_values.add(float(v))
    assert sorted_values.quantile(q) == pytest.approx(np.percentile(values, q * 100))


def test_stopping_keeps_only_trials_in_the_top_so_far():
    # eta=2: a trial continues at a rung if it reaches the median of the results recorded there before it.
    sched = ASHAScheduler(metric="acc", mode="max", max_t=10, grace_period=1, reduction_factor=2)
    a, b, c, d, e = trials = make_trials(5)
    attach(sched, trials)
    assert sched.on_trial_result(a, result(1, 1.0)) is CONTINUE  # first at the rung: nobody to beat
    assert sched.on_trial_result(b, result(1, 2.0)) is CONTINUE  # cutoff = median([1]) = 1
    assert sched.on_trial_result(c, result(1, 0.5)) is STOP      # cutoff = median([1, 2]) = 1.5
    assert sched.on_trial_result(d, result(1, 1.0)) is CONTINUE  # cutoff = median([.5, 1, 2]) = 1: a tie
    assert sched.on_trial_result(e, result(1, 0.9)) is STOP      # cutoff = median([.5, 1, 1, 2]) = 1
    assert sched.rung_records()[0][0] == {"t0": 1.0, "t1": 2.0, "t2": 0.5, "t3": 1.0, "t4": 0.9}


def test_stopping_judges_each_rung_once_and_between_rungs_continues():
    sched = ASHAScheduler(metric="acc", mode="max", max_t=10, grace_period=1, reduction_factor=2)
    a, b = trials = make_trials(2)
    attach(sched, trials)
    for it in (1, 2):
        assert sched.on_trial_result(a, result(it, 5.0)) is CONTINUE
    assert sched.on_trial_result(b, result(1, 1.0)) is STOP
    assert sched.on_trial_result(a, result(3, 0.0)) is CONTINUE  # 3 is no rung: never judged there
    assert sched.on_trial_result(a, result(4, 0.0)) is CONTINUE  # alone at rung 4
    assert [sorted(r) for r in sched.rung_records()[0]] == [["t0", "t1"], ["t0"], ["t0"], []]


def test_stopping_judges_a_sparse_reporter_at_the_highest_rung_passed():
    sched = ASHAScheduler(metric="acc", mode="max", max_t=100, grace_period=1, reduction_factor=2)
    a, b = trials = make_trials(2)
    attach(sched, trials)
    assert sched.on_trial_result(a, result(5, 3.0)) is CONTINUE
    assert sched.on_trial_result(b, result(6, 1.0)) is STOP
    assert [sorted(r) for r in sched.rung_records()[0]] == [[], [], ["t0", "t1"], [], [], [], []]


def test_min_mode_mirrors_max_mode():
    sched = ASHAScheduler(metric="loss", mode="min", max_t=10, grace_period=1, reduction_factor=2)
    a, b, c = trials = make_trials(3)
    attach(sched, trials)
    assert sched.on_trial_result(a, {"training_iteration": 1, "loss": 1.0}) is CONTINUE
    assert sched.on_trial_result(b, {"training_iteration": 1, "loss": 3.0}) is STOP
    assert sched.on_trial_result(c, {"training_iteration": 1, "loss": 0.5}) is CONTINUE


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_counts_as_the_worst(bad):
    sched = ASHAScheduler(metric="loss", mode="min", max_t=10, grace_period=1, reduction_factor=2)
    a, b, c = trials = make_trials(3)
    attach(sched, trials)
    assert sched.on_trial_result(a, {"training_iteration": 1, "loss": 10.0}) is CONTINUE
    assert sched.on_trial_result(b, {"training_iteration": 1, "loss": bad}) is STOP
    # The diverged trial does not drag the cutoff down to nothing: 11 is still below the median (10, -inf).
    assert sched.on_trial_result(c, {"training_iteration": 1, "loss": 9.0}) is CONTINUE


def test_every_trial_stops_at_max_t():
    sched = ASHAScheduler(metric="acc", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    (a,) = trials = make_trials(1)
    attach(sched, trials)
    assert [sched.on_trial_result(a, result(it, 1.0)) for it in (1, 2, 3, 4)] == [CONTINUE] * 3 + [STOP]


def test_time_attr_can_be_seconds():
    sched = ASHAScheduler(time_attr="time_total_s", metric="acc", mode="max", max_t=30.0, grace_period=2.5,
                          reduction_factor=3)
    a, b = trials = make_trials(2)
    attach(sched, trials)
    assert sched.on_trial_result(a, {"time_total_s": 2.7, "acc": 1.0}) is CONTINUE
    assert sched.on_trial_result(b, {"time_total_s": 1.0, "acc": 0.0}) is CONTINUE  # before the grace period
    assert sched.on_trial_result(b, {"time_total_s": 3.1, "acc": 0.0}) is STOP
    assert sched.on_trial_result(a, {"time_total_s": 30.2, "acc": 1.0}) is STOP  # max_t


def test_brackets_are_drawn_reproducibly_and_shift_the_first_rung():
    def brackets(seed):
        sched = ASHAScheduler(metric="acc", mode="max", max_t=81, reduction_factor=3, brackets=3, seed=seed)
        trials = make_trials(200)
        attach(sched, trials)
        return [sched._bracket_of[t.trial_id] for t in trials]

    first = brackets(7)
    assert first == brackets(7)
    assert first != brackets(8)
    counts = np.bincount(first, minlength=3)
    # Ray's weighting: each extra rung makes a bracket e times as likely (4, 3, 2 rungs here).
    expected = np.exp([0, -1, -2]) / np.exp([0, -1, -2]).sum() * 200
    assert np.all(np.abs(counts - expected) < 30), counts
    sched = ASHAScheduler(metric="acc", mode="max", max_t=81, reduction_factor=3, brackets=3)
    assert [[r.milestone for r in rungs] for rungs in sched._brackets] == [[1, 3, 9, 27], [3, 9, 27], [9, 27]]


async def test_runs_seed_draws_the_brackets_of_an_unseeded_asha_repeatably(tmp_path):
    # ASHA without a seed of its own takes run()'s: the same seed stops the same trials at the
    # same iterations; before, every run drew its brackets afresh.
    async def stopped_at(name: str, seed: int) -> dict:
        analysis = await simulate(str(tmp_path / name), num_samples=16, seed=seed,
                                  scheduler=ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3, brackets=3))
        return {t.config["x"]: t.iteration for t in analysis.trials}

    first = await stopped_at("a", 3)
    assert await stopped_at("b", 3) == first
    assert any([await stopped_at(f"c{seed}", seed) != first for seed in (4, 5, 6)])


# --- promotion --------------------------------------------------------------------------------------

def promotion(**kwargs) -> ASHAScheduler:
    return ASHAScheduler(metric="acc", mode="max", max_t=9, grace_period=1, reduction_factor=3,
                         variant="promotion", **kwargs)


def test_promotion_pauses_at_the_rung_until_in_the_top_third():
    sched = promotion()
    t = make_trials(6)
    attach(sched, t)
    # Rung 1: with n results, the top floor(n/3) may move on.
    assert sched.on_trial_result(t[0], result(1, 1.0)) is PAUSE  # n=1: top 0
    assert sched.on_trial_result(t[1], result(1, 5.0)) is PAUSE  # n=2: top 0
    t[0].status = t[1].status = Status.PAUSED
    assert sched.on_trial_result(t[2], result(1, 0.0)) is PAUSE  # n=3: top 1 is t1, paused: t2 waits
    t[2].status = Status.PAUSED
    t[3].status = t[4].status = Status.PENDING
    # A free worker promotes the best paused trial (t1) before starting a new one.
    assert sched.choose_trial_to_run([t[0], t[1], t[2], t[3], t[4]]) is t[1]
    assert sched.choose_trial_to_run([t[0], t[1], t[2], t[3], t[4]]) is t[1]  # asking again changes nothing
    t[1].status = Status.RUNNING  # the controller starts it
    # Nothing else is in the top third (t1 already moved on): start new trials.
    assert sched.choose_trial_to_run([t[0], t[2], t[3], t[4]]) is t[3]
    # n=4: top 1 = the new best, t3; it was just recorded and continues without pausing.
    assert sched.on_trial_result(t[3], result(1, 9.0)) is CONTINUE
    # n=5: top 1 = t3: t4 (2nd best) waits.
    assert sched.on_trial_result(t[4], result(1, 6.0)) is PAUSE
    # n=6: top 2 = t3, t4: t4 is promotable now, and a higher-ranked paused trial comes first.
    assert sched.on_trial_result(t[5], result(1, 0.5)) is PAUSE
    t[4].status = t[5].status = Status.PAUSED
    assert sched.choose_trial_to_run([t[0], t[2], t[4], t[5]]) is t[4]
    t[4].status = Status.RUNNING
    assert sched.choose_trial_to_run([t[0], t[2], t[5]]) is None  # nothing promotable, no new trial


def test_promotion_prefers_the_highest_rung():
    sched = promotion()
    t = make_trials(7)
    attach(sched, t)
    for trial, acc in zip(t[:6], [6, 5, 4, 3, 2, 1]):
        assert sched.on_trial_result(trial, result(1, acc)) is PAUSE  # each is below the top third when it arrives
    # rung 1 holds 6 results: its top 2 (t0, t1) are promotable.
    for trial in t[:6]:
        trial.status = Status.PAUSED
    assert sched.choose_trial_to_run(t[:6]) is t[0]
    t[0].status = Status.RUNNING
    assert sched.choose_trial_to_run(t[1:6]) is t[1]  # t0 was chosen: the next best of rung 1 is promotable too
    assert sched.on_trial_result(t[0], result(3, 1.0)) is PAUSE  # rung 3: n=1, top 0
    t[0].status = Status.PAUSED
    t[1].status = Status.RUNNING
    assert sched.on_trial_result(t[1], result(3, 0.5)) is PAUSE  # rung 3: n=2, top 0
    t[1].status = Status.PAUSED
    assert sched.choose_trial_to_run(t[2:6]) is None  # rung 1's top 2 were promoted; rung 3: top 0
    # A third result at rung 3 makes t0 promotable there: rung 3 is served before rung 1.
    t[6].status = Status.RUNNING
    assert sched.on_trial_result(t[6], result(1, 7.0)) is CONTINUE  # rung 1: n=7, top 2 = t6, t0
    assert sched.on_trial_result(t[6], result(3, 0.2)) is PAUSE
    t[6].status = Status.PAUSED
    assert sched.choose_trial_to_run(t[1:]) is None  # t0 is not waiting (not a candidate): none to promote
    assert sched.choose_trial_to_run(t) is t[0]


def test_promotion_forgets_trials_that_end_while_paused():
    sched = promotion()
    t = make_trials(3)
    attach(sched, t)
    for trial, acc in zip(t, [3.0, 2.0, 1.0]):
        assert sched.on_trial_result(trial, result(1, acc)) is PAUSE
        trial.status = Status.PAUSED
    t[0].status = Status.TERMINATED
    sched.on_trial_complete(t[0], None)
    assert sched.choose_trial_to_run(t[1:]) is None  # t0 was the top third; t1 is not promotable


def test_promotion_runs_the_paper_schedule():
    # 27 trials with qualities, 3 workers, eta=3, rungs 1, 3 (max_t=9): by the end the rungs hold
    # results of trials in the paper's proportions, and the best trials went furthest.
    sched = promotion(seed=0)
    qualities = list(np.random.default_rng(0).permutation(27))
    sim = Simulation(sched, qualities, slots=3)
    asyncio.run(sim.run())
    assert len(sim.reached(1)) == 27
    # ASHA promotes floor(n/eta) of each rung over the whole run: 9 of 27 to rung 3, 3 of those to 9.
    assert len(sim.reached(3)) == 9
    assert len(sim.reached(9)) == 3
    assert sim.best(1)[0] in sim.reached(9)
    paused = [t for t in sim.trials if t.status is Status.PAUSED]
    assert len(paused) == 27 - 3  # the losers wait at their rungs; the controller ends them with the run


async def test_promotion_takes_the_best_trial_to_max_t_when_a_rung_cannot_fill(storage):
    # 8 trials, eta=3, rungs 1 and 3, R=9 (loss = x + 10/t: lower x is better at every rung). Rung 1
    # promotes floor(8/3) = 2 trials; rung 3 then holds 2, whose top floor(2/3) is nobody, so on the old
    # code no trial ever reached max_t. Once no trial runs and none will come, a rung's top 1/eta is
    # at least its best trial (as a HyperBand bracket that cannot fill keeps one).
    analysis = await simulate(storage, workers=2, config={"x": at.grid_search(list(range(8)))},
                              scheduler=ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3, variant="promotion"))
    reached = {t.config["x"]: t.iteration for t in analysis.trials}
    assert reached == {0: 9, 1: 3, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}
    status = {t.config["x"]: t.status for t in analysis.trials}
    assert status[0] is Status.FINISHED and all(status[x] is Status.EARLY_STOPPED for x in range(1, 8))


async def test_promotion_waits_for_running_trials_before_it_takes_a_short_rungs_best(storage):
    # 9 trials: rung 3 fills with 3 and promotes its best by the paper's rule alone; the best trial
    # reaches max_t once, and the runner-up is not promoted as well.
    analysis = await simulate(storage, workers=3, config={"x": at.grid_search(list(range(9)))},
                              scheduler=ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3, variant="promotion"))
    reached = {t.config["x"]: t.iteration for t in analysis.trials}
    assert reached == {0: 9, 1: 3, 2: 3, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1}


@pytest.mark.parametrize("variant", ["stopping", "promotion"])
async def test_stop_last_trials_false_lets_the_best_train_past_max_t_as_in_ray_tune(storage, variant):
    scheduler = ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3, stop_last_trials=False, variant=variant)
    analysis = await simulate(storage, workers=1, config={"x": at.grid_search(list(range(9)))},
                              stop={"training_iteration": 12}, scheduler=scheduler)
    reached = {t.config["x"]: t.iteration for t in analysis.trials}
    assert reached[0] == 12 and max(reached[x] for x in range(1, 9)) < 9  # rungs 1 and 3 still halve
    assert next(t for t in analysis.trials if t.config["x"] == 0).status is Status.FINISHED


def test_stop_last_trials_must_be_a_boolean():
    with pytest.raises(ValueError, match="stop_last_trials must be True or False"):
        ASHAScheduler(metric="acc", mode="max", stop_last_trials="no")
