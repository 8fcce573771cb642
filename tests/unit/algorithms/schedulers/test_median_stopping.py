"""The median stopping rule (Vizier, Golovin et al. 2017) on scripted results, and against a
direct transcription of the rule (Ray Tune's) on random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asynctune import CONTINUE, PAUSE, STOP, MedianStoppingRule, Status

from tests.helpers.schedulers import RecordingControl, make_trials


def rule(**kwargs) -> MedianStoppingRule:
    kwargs = {"metric": "acc", "mode": "max", "grace_period": 1, "min_samples_required": 2, **kwargs}
    return MedianStoppingRule(**kwargs)


def result(it: float, acc: float) -> dict:
    return {"training_iteration": it, "acc": acc}


@pytest.mark.parametrize("kwargs, message", [
    ({"grace_period": -1}, "grace_period must be a finite number >= 0"),
    ({"grace_period": float("inf")}, "grace_period must be a finite number >= 0"),
    ({"hard_stop": "no"}, "hard_stop must be True or False"),
    ({"use_running_average": 1}, "use_running_average must be True or False"),
    ({"min_samples_required": 0}, "min_samples_required must be an integer >= 1"),
    ({"min_samples_required": 2.5}, "min_samples_required must be an integer >= 1"),
    ({"time_bucket": 0}, "time_bucket must be a positive number"),
    ({"time_attr": 3}, "time_attr must be the name"),
], ids=["grace-negative", "grace-inf", "hard-stop-str", "running-average-int", "min-samples-0", "min-samples-float",
        "bucket-0", "time-attr-int"])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MedianStoppingRule(metric="acc", mode="max", **kwargs)


def test_stops_a_trial_whose_best_is_below_the_median_of_running_averages():
    sched = rule()
    a, b, c, d = make_trials(4)
    # Running averages at steps 1 and 2: a: 1, 2; b: 2, 3.
    for trial, accs in ((a, [1, 3]), (b, [2, 4])):
        for it, acc in enumerate(accs, 1):
            assert sched.on_trial_result(trial, result(it, acc)) is CONTINUE  # < 2 others at each step
    assert sched.on_trial_result(c, result(1, 0.5)) is STOP  # median(1, 2) = 1.5 > best 0.5
    assert sched.on_trial_result(d, result(1, 1.5)) is CONTINUE  # median(1, 2, .5) = 1: 1.5 is better
    # Step 2: only a and b reached it (c stopped at 1): median(2, 3) = 2.5 > best 2.4.
    assert sched.on_trial_result(d, result(2, 2.4)) is STOP


def test_strictly_worse_than_the_median_stops_and_a_tie_continues():
    sched = rule()
    a, b, c, d = make_trials(4)
    sched.on_trial_result(a, result(1, 1.0))
    sched.on_trial_result(b, result(1, 3.0))
    assert sched.on_trial_result(c, result(1, 2.0)) is CONTINUE  # median(1, 3) = 2: a tie
    assert sched.on_trial_result(d, result(1, 1.9)) is STOP  # median(1, 2, 3) = 2


def test_the_best_result_so_far_counts_not_the_latest():
    sched = rule()
    a, b, c = make_trials(3)
    for it in (1, 2, 3):
        sched.on_trial_result(a, result(it, 2.0))
        sched.on_trial_result(b, result(it, 2.0))
    assert sched.on_trial_result(c, result(1, 5.0)) is CONTINUE
    assert sched.on_trial_result(c, result(2, 0.0)) is CONTINUE  # best 5 >= median 2
    sched = rule(use_running_average=True)
    a, b, c = make_trials(3)
    for it in (1, 2, 3):
        sched.on_trial_result(a, result(it, 2.0))
        sched.on_trial_result(b, result(it, 2.0))
    assert sched.on_trial_result(c, result(1, 3.0)) is CONTINUE
    assert sched.on_trial_result(c, result(2, 0.0)) is STOP  # running average 1.5 < 2


def test_grace_period_and_min_samples_protect_young_trials():
    sched = rule(grace_period=3, min_samples_required=2)
    a, b, c = make_trials(3)
    for it in (1, 2, 3):
        sched.on_trial_result(a, result(it, 10.0))
    for it in (1, 2):
        assert sched.on_trial_result(c, result(it, 0.0)) is CONTINUE  # before the grace period
    assert sched.on_trial_result(c, result(3, 0.0)) is CONTINUE  # only one other trial reached step 3
    for it in (1, 2, 3, 4):
        sched.on_trial_result(b, result(it, 10.0))
    sched.on_trial_result(a, result(4, 10.0))
    assert sched.on_trial_result(c, result(4, 0.0)) is STOP


def test_running_averages_start_at_the_grace_period():
    # a's results before the grace period (huge) do not count towards its running average.
    sched = rule(grace_period=2, min_samples_required=1)
    a, b = make_trials(2)
    sched.on_trial_result(a, result(1, 100.0))
    sched.on_trial_result(a, result(2, 1.0))
    assert sched.on_trial_result(b, result(1, 0.0)) is CONTINUE
    assert sched.on_trial_result(b, result(2, 1.5)) is CONTINUE  # median = a's average from step 2 on = 1


def test_soft_mode_pauses_and_never_judges_again():
    sched = rule(hard_stop=False)
    a, b, c = make_trials(3)
    for trial in (a, b):
        sched.on_trial_result(trial, result(1, 5.0))
        sched.on_trial_result(trial, result(2, 5.0))
    assert sched.on_trial_result(c, result(1, 0.0)) is PAUSE
    assert sched.on_trial_result(c, result(2, 0.0)) is CONTINUE  # resumed: runs to its end
    # A paused trial runs again only once no new trial waits (the default choose_trial_to_run).
    c.status = Status.PAUSED
    d = make_trials(1, "n")[0]
    d.status = Status.PENDING
    assert sched.choose_trial_to_run([c, d]) is d
    assert sched.choose_trial_to_run([c]) is c


def test_a_trial_that_skips_steps_counts_there_with_its_previous_average():
    sched = rule(min_samples_required=1)
    a, b = make_trials(2)
    sched.on_trial_result(a, result(1, 4.0))
    sched.on_trial_result(a, result(5, 0.0))  # at steps 2..4 its running average was 4
    assert sched.on_trial_result(b, result(1, 3.0)) is STOP  # median 4
    a2, b2 = make_trials(2, "x")
    sched.on_trial_result(a2, result(1, 4.0))
    sched.on_trial_result(a2, result(5, 0.0))
    assert sched.on_trial_result(b2, result(1, 4.5)) is CONTINUE
    assert sched.on_trial_result(b2, result(3, 3.9)) is CONTINUE  # best 4.5 >= median(4, 4) at step 3


def test_time_bucket_compares_trials_at_whole_seconds():
    sched = rule(time_attr="time_total_s", grace_period=0, min_samples_required=1, time_bucket=1.0)
    a, b = make_trials(2)
    sched.on_trial_result(a, {"time_total_s": 0.4, "acc": 1.0})
    sched.on_trial_result(a, {"time_total_s": 1.3, "acc": 3.0})
    assert sched.on_trial_result(b, {"time_total_s": 0.7, "acc": 0.5}) is STOP  # second 0: a's average 1


def test_every_result_within_a_time_bucket_counts_towards_the_best_and_the_averages():
    # time_total_s with steps shorter than the bucket: Vizier and Ray Tune count every result. The old
    # code kept only the first result of each second, so c's best (9 at 1.6 s) was never seen.
    sched = rule(time_attr="time_total_s", grace_period=0, min_samples_required=2)
    a, b, c = make_trials(3)
    assert sched.on_trial_result(c, {"time_total_s": 1.2, "acc": 1.0}) is CONTINUE  # nobody to compare with
    assert sched.on_trial_result(c, {"time_total_s": 1.6, "acc": 9.0}) is CONTINUE
    for trial in (a, b):
        sched.on_trial_result(trial, {"time_total_s": 1.0, "acc": 5.0})
        sched.on_trial_result(trial, {"time_total_s": 2.0, "acc": 5.0})
    assert sched.on_trial_result(c, {"time_total_s": 2.1, "acc": 1.0}) is CONTINUE  # best 9 >= median 5
    # The others' running averages take in every result of the second too: (1 + 9) / 2 = 5 each.
    sched = rule(time_attr="time_total_s", grace_period=0, min_samples_required=2)
    a, b, c = make_trials(3)
    for trial in (a, b):
        sched.on_trial_result(trial, {"time_total_s": 1.2, "acc": 1.0})
        sched.on_trial_result(trial, {"time_total_s": 1.6, "acc": 9.0})
    assert sched.on_trial_result(c, {"time_total_s": 1.9, "acc": 4.0}) is STOP  # 4 < median 5 (old: 1)


def test_a_result_at_a_time_already_reported_is_not_judged_again():
    sched = rule(min_samples_required=1)
    a, b = make_trials(2)
    sched.on_trial_result(a, result(1, 5.0))
    sched.on_trial_result(a, result(2, 5.0))
    assert sched.on_trial_result(b, result(1, 6.0)) is CONTINUE
    assert sched.on_trial_result(b, result(2, 6.0)) is CONTINUE
    assert sched.on_trial_result(b, result(2, 0.0)) is CONTINUE  # a restart from step 1 replays step 2
    assert sched.on_trial_result(b, result(3, 0.0)) is CONTINUE  # best 6; nobody else at step 3


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_results_count_as_the_worst(bad):
    sched = rule(metric="loss", mode="min", min_samples_required=1)
    a, b, c = make_trials(3)
    sched.on_trial_result(a, {"training_iteration": 1, "loss": 1.0})
    assert sched.on_trial_result(b, {"training_iteration": 1, "loss": bad}) is STOP
    # The diverged trial's average (the worst) is one of the values the median is taken over.
    assert sched.on_trial_result(c, {"training_iteration": 1, "loss": 5.0}) is CONTINUE  # median(1, worst)


def reference_decisions(histories, order, *, grace, min_samples, mode, hard_stop=True):
    """Ray Tune's MedianStoppingRule, transcribed: O(n * t) per result."""
    seen: dict[str, list[tuple[int, float]]] = {}
    stopped: set[str] = set()
    decisions = []
    for tid, it in order:
        if tid in stopped:
            continue
        value = histories[tid][it - 1]
        seen.setdefault(tid, []).append((it, value))
        if it < grace:
            decisions.append((tid, it, CONTINUE))
            continue
        others = [o for o, res in seen.items() if o != tid and res[-1][0] >= it]
        if len(others) < min_samples:
            decisions.append((tid, it, CONTINUE))
            continue
        means = [np.mean([v for t, v in seen[o] if grace <= t <= it]) for o in others]
        median = float(np.median(means))
        best = max(v for _, v in seen[tid]) if mode == "max" else min(v for _, v in seen[tid])
        worse = best < median if mode == "max" else best > median
        if worse:
            stopped.add(tid)
        decisions.append((tid, it, (STOP if hard_stop else PAUSE) if worse else CONTINUE))
    return decisions


@pytest.mark.parametrize("seed", range(6), ids=[f"seed-{s}" for s in range(6)])
@pytest.mark.parametrize("mode", ["min", "max"])
def test_agrees_with_a_direct_transcription_of_the_rule(seed, mode):
    rng = np.random.default_rng(seed)
    n, steps = 12, 10
    histories = {f"t{i}": list(np.round(rng.normal(rng.normal(), 1, size=steps), 2)) for i in range(n)}
    # Trials progress at different speeds: interleave their steps at random, each in order.
    position = {tid: 0 for tid in histories}
    order = []
    while any(p < steps for p in position.values()):
        tid = f"t{rng.integers(n)}"
        if position[tid] < steps:
            position[tid] += 1
            order.append((tid, position[tid]))
    grace, min_samples = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    expected = reference_decisions(histories, order, grace=grace, min_samples=min_samples, mode=mode)

    sched = MedianStoppingRule(metric="loss", mode=mode, grace_period=grace, min_samples_required=min_samples)
    trials = {t.trial_id: t for t in make_trials(n)}
    sched.control = RecordingControl(list(trials.values()))
    stopped, decisions = set(), []
    for tid, it in order:
        if tid in stopped:
            continue
        decision = sched.on_trial_result(trials[tid], {"training_iteration": it, "loss": histories[tid][it - 1]})
        if decision is STOP:
            stopped.add(tid)
        decisions.append((tid, it, decision))
    assert decisions == expected
    assert any(d is STOP for _, _, d in decisions)  # the data exercises stopping
