"""Synchronous Hyperband (Li et al. 2017) as a coroutine: brackets, rungs, pausing and promotion."""

from __future__ import annotations

import numpy as np
import pytest

import asynctune as at
from asynctune import CONTINUE, PAUSE, STOP, HyperBandScheduler, Status, Trial

from tests.helpers.scheduler_runs import simulate
from tests.helpers.schedulers import RecordingControl, Simulation, decide, make_trials


@pytest.mark.parametrize("kwargs, message", [
    ({"reduction_factor": 1}, "reduction_factor must be a number > 1"),
    ({"max_t": 0}, "max_t must be a positive number"),
    ({"time_attr": None}, "time_attr must be the name"),
], ids=["eta-1", "max-t-0", "no-time-attr"])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HyperBandScheduler(metric="acc", mode="max", **kwargs)


def test_bracket_sizes_are_the_papers_table():
    # Li et al. 2017, Table 1 (R=81, eta=3): (n_0, r_0) of brackets s = 4 .. 0.
    sched = HyperBandScheduler(max_t=81, reduction_factor=3)
    assert sched.bracket_sizes() == [(81, 1), (34, 3), (15, 9), (8, 27), (5, 81)]


@pytest.mark.parametrize("max_t, eta, s_max", [(81, 3, 4), (243, 3, 5), (100, 3, 4), (1, 3, 0), (64, 4, 3),
                                              (1000, 10, 3)],
                         ids=["81-3", "243-3", "100-3", "1", "64-4", "1000-10"])
def test_s_max_is_floor_log_eta_of_max_t(max_t, eta, s_max):
    assert HyperBandScheduler(max_t=max_t, reduction_factor=eta).s_max == s_max


async def started(n: int, *, mode: str = "max", max_t: float = 9) -> tuple[HyperBandScheduler, RecordingControl,
                                                                             list[Trial]]:
    """A scheduler with bracket s=2 (n=9 trials, r=1; rungs at 1 and 3; R=9) and n trials added."""
    sched = HyperBandScheduler(metric="acc", mode=mode, max_t=max_t, reduction_factor=3)
    trials = make_trials(n)
    control = RecordingControl(trials)
    await sched.start(control)
    for trial in trials:
        sched.on_trial_add(trial)
    await sched.settled()  # the coroutine has taken in every added trial
    return sched, control, trials


async def reach_rung(sched, trials, it, accs) -> list:
    decisions = []
    for trial, acc in zip(trials, accs):
        decisions.append(await decide(sched, trial, {"training_iteration": it, "acc": acc}))
        if decisions[-1] is PAUSE:
            trial.status = Status.PAUSED
    return decisions


async def test_trials_pause_at_the_rung_until_it_is_full_then_the_top_third_resume():
    sched, control, t = await started(9)
    try:
        accs = [5, 1, 7, 3, 8, 2, 6, 4, 0]
        decisions = await reach_rung(sched, t, 1, accs)
        assert decisions[:8] == [PAUSE] * 8 and control.actions[:0] == []
        # t8 completed the rung and is not among the best 3 (t4, t2, t6): it stops; they resume.
        assert decisions[8] is STOP
        assert sorted(a for a in control.actions if a[0] == "resume") == [("resume", "t2"), ("resume", "t4"),
                                                                          ("resume", "t6")]
        assert sorted(a[1] for a in control.actions if a[0] == "stop") == ["t0", "t1", "t3", "t5", "t7"]
        # Rung 2 (r=3) holds the 3 survivors: 1 continues to R=9.
        for trial in (t[2], t[4], t[6]):
            trial.status = Status.RUNNING
            assert await decide(sched, trial, {"training_iteration": 2, "acc": 0}) is CONTINUE
        decisions = await reach_rung(sched, [t[2], t[4], t[6]], 3, [9, 1, 2])
        assert decisions[:2] == [PAUSE, PAUSE]
        assert decisions[2] is STOP  # t6 was second: only floor(3/3) = 1 goes on
        assert control.actions[-2:] == [("resume", "t2"), ("stop", "t4")]
        t[2].status = Status.RUNNING
        assert await decide(sched, t[2], {"training_iteration": 8, "acc": 9}) is CONTINUE
        assert await decide(sched, t[2], {"training_iteration": 9, "acc": 9}) is STOP  # R
    finally:
        await sched.close()


async def test_the_trial_that_completes_the_rung_continues_if_it_is_kept():
    sched, control, t = await started(9, mode="min")
    try:
        decisions = await reach_rung(sched, t, 1, [5, 1, 7, 3, 8, 2, 6, 4, 0])
        assert decisions[8] is CONTINUE  # loss 0: the best
        assert sorted(a[1] for a in control.actions if a[0] == "resume") == ["t1", "t5"]
    finally:
        await sched.close()


async def test_a_trial_that_ends_early_leaves_the_rung():
    sched, control, t = await started(9)
    try:
        await reach_rung(sched, t[:7], 1, [1, 2, 3, 4, 5, 6, 7])
        t[7].status = Status.ERROR
        sched.on_trial_error(t[7])
        await sched.settled()
        assert not any(a[0] == "resume" for a in control.actions)  # t8 is still out
        t[8].status = Status.TERMINATED
        sched.on_trial_complete(t[8], None)  # e.g. a stop criterion ended it
        await sched.settled()
        # The rung is complete with 7 trials: the top floor(7/3) = 2 go on.
        assert sorted(a[1] for a in control.actions if a[0] == "resume") == ["t5", "t6"]
    finally:
        await sched.close()


async def test_a_bracket_that_cannot_fill_closes_when_the_searcher_is_done():
    sched, control, t = await started(5)
    try:
        assert await reach_rung(sched, t, 1, [3, 1, 4, 1.5, 2]) == [PAUSE] * 5
        assert control.actions == []
        await sched.on_searcher_finished()
        # max(1, floor(5/3)) = 1 survivor.
        assert [a for a in control.actions if a[0] == "resume"] == [("resume", "t2")]
        assert sorted(a[1] for a in control.actions if a[0] == "stop") == ["t0", "t1", "t3", "t4"]
    finally:
        await sched.close()


async def test_results_without_the_metric_do_not_fill_a_rung():
    sched, control, t = await started(1)
    try:
        await sched.on_searcher_finished()
        assert await decide(sched, t[0], {"training_iteration": 1}) is CONTINUE
        assert await decide(sched, t[0], {"training_iteration": 2, "acc": 1}) is CONTINUE  # alone: kept
        assert await decide(sched, t[0], {"training_iteration": 9, "acc": 1}) is STOP
    finally:
        await sched.close()


async def test_brackets_fill_in_order_and_a_new_one_starts_when_one_is_full():
    sched, control, t = await started(12)
    try:
        assert [(b.s, b.n, len(b.trials)) for b in sched.brackets] == [(2, 9, 9), (1, 5, 3)]
        assert sched.brackets[1].trials == t[9:]
        # Bracket s=1 starts at r=3: iterations 1 and 2 do not count for its rung.
        for it in (1, 2):
            assert await decide(sched, t[9], {"training_iteration": it, "acc": 1}) is CONTINUE
        assert await decide(sched, t[9], {"training_iteration": 3, "acc": 1}) is PAUSE
    finally:
        await sched.close()


@pytest.mark.parametrize("slots", [1, 4], ids=["sequential", "4-workers"])
async def test_a_full_bracket_keeps_the_best_third_at_every_rung(slots):
    # 81 trials fill bracket s=4 of R=81, eta=3: 81 run 1 iteration, 27 run 3, 9 run 9, 3 run 27, 1 runs 81.
    sched = HyperBandScheduler(metric="acc", mode="max", max_t=81, reduction_factor=3)
    sim = Simulation(sched, list(np.random.default_rng(1).permutation(81)), slots=slots)
    await sim.run()
    for iteration, survivors in [(1, 81), (3, 27), (9, 9), (27, 3), (81, 1)]:
        assert sorted(sim.reached(iteration)) == sim.best(survivors), iteration
    assert max(sim.iteration.values()) == 81
    assert all(t.status is Status.TERMINATED for t in sim.trials)


async def test_brackets_run_side_by_side_and_the_last_one_closes_short():
    # R=9, eta=3: brackets (9, 1), (5, 3), (3, 9); 12 trials: the second bracket gets only 3.
    sched = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    qualities = list(np.random.default_rng(2).permutation(12))
    sim = Simulation(sched, qualities, slots=3)
    await sim.run()
    first, second = [t.trial_id for t in sim.trials[:9]], [t.trial_id for t in sim.trials[9:]]
    assert sorted(set(sim.reached(3)) & set(first)) == sorted(sorted(first, key=lambda i: -qualities[int(i[1:])])[:3])
    assert sorted(sim.reached(9)) == sorted(
        [max(first, key=lambda i: qualities[int(i[1:])]), max(second, key=lambda i: qualities[int(i[1:])])])
    assert all(t.status is Status.TERMINATED for t in sim.trials)


async def test_stop_last_trials_false_lets_the_survivors_train_past_max_t_as_in_ray_tune(storage):
    # R=9, eta=3, 9 trials: one bracket (s=2); rung 1 keeps 3, rung 3 keeps 1, which then trains on.
    scheduler = HyperBandScheduler(max_t=9, reduction_factor=3, stop_last_trials=False)
    analysis = await simulate(storage, workers=3, config={"x": at.grid_search(list(range(9)))},
                              stop={"training_iteration": 12}, scheduler=scheduler)
    reached = {t.config["x"]: t.iteration for t in analysis.trials}
    assert reached == {0: 12, 1: 3, 2: 3, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1}
    with pytest.raises(ValueError, match="stop_last_trials must be True or False"):
        HyperBandScheduler(metric="acc", mode="max", stop_last_trials=1)
