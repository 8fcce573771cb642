"""Issue 30: schedulers that behave as their papers and peers say (fixes 1-6).

Each test here failed on the code before its fix; the issue's item number is in its name.
Lifecycle tests run on the SimulatedExecutor (virtual time) through `asynctune.run_async`.
"""

from __future__ import annotations

from collections import Counter

import asynctune as at

from scheduler_runs import simulate


# 1. Paused trials are not live for ConcurrencyLimiter ------------------------------------------

async def test_1_bohb_with_a_concurrency_limit_fills_its_brackets_and_finishes(storage):
    analysis = await simulate(
        storage, num_samples=32, workers=4,
        search_alg=at.ConcurrencyLimiter(at.BOHBSearch(seed=0), max_concurrent=4),
        scheduler=at.HyperBandScheduler(max_t=27, reduction_factor=3))
    assert len(analysis.trials) == 32
    assert Counter(t.status for t in analysis.trials) == {at.Status.TERMINATED: 32}
    # the first bracket (s=3: 27 trials at r=1) filled, so its best trials reached max_t
    assert max(t.last_result["training_iteration"] for t in analysis.trials) == 27


async def test_1_promotion_asha_with_a_concurrency_limit_does_not_stall(storage):
    analysis = await simulate(
        storage, num_samples=16, workers=4,
        search_alg=at.ConcurrencyLimiter(at.RandomSearch(seed=0), max_concurrent=2),
        scheduler=at.ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3, variant="promotion"))
    assert len(analysis.trials) == 16
    assert all(t.status is at.Status.TERMINATED for t in analysis.trials)
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
