"""Resuming after fixing the code (issue 27, case 10): `run(fixed, resume=True)` runs the trainable
passed, not the one pickled by the first run; what a later `asynctune resume DIR` runs is the one
saved last. A real driver process is killed mid-run; the resume runs real workers."""

from __future__ import annotations

import os
import textwrap

import asynctune as at
from tests.helpers.held_driver import kill_held

BUGGY = textwrap.dedent("""
    import os, sys, time
    import asynctune as at

    HOLD = sys.argv[2]

    def train(config):  # a bug from its third step on; the test holds it before that
        start = (at.get_checkpoint() or {}).get("i", 0)
        for i in range(start, 5):
            while i >= 2 and os.path.exists(HOLD):
                time.sleep(0.02)
            if i >= 2:
                raise RuntimeError("the bug")
            at.report(loss=config["x"] + i, checkpoint={"i": i + 1})

    at.run(train, config={"x": at.grid_search([0, 1])}, storage_path=sys.argv[1], name="exp",
           metric="loss", mode="min", verbose=0)
""")


def fixed(config):
    start = (at.get_checkpoint() or {}).get("i", 0)
    for i in range(start, 5):
        at.report(loss=config["x"] + i, checkpoint={"i": i + 1}, fixed=True)


def test_run_with_resume_uses_the_trainable_passed(storage, tmp_path):
    kill_held(tmp_path, BUGGY, storage, results=4)
    experiment = os.path.join(storage, "exp")

    analysis = at.run(fixed, storage_path=storage, name="exp", resume=True, verbose=0)
    assert analysis.status == "FINISHED"
    for trial in analysis.trials:
        assert trial.status is at.Status.TERMINATED, trial.error
        results = analysis.trial_results(trial.trial_id)
        assert [r["training_iteration"] for r in results] == [1, 2, 3, 4, 5]
        assert [bool(r.get("fixed")) for r in results] == [False, False, True, True, True]

    from asynctune.store.recovery import load_resume_state

    assert load_resume_state(experiment).trainable.__name__ == "fixed"  # what `asynctune resume` runs now


def buggy_for_large_x(config):
    if config["x"] > 0.5 and not os.environ.get("FIXED_FOR_LARGE_X"):
        raise RuntimeError("the bug")
    at.report(loss=config["x"])


def fixed_for_large_x(config):
    os.environ["FIXED_FOR_LARGE_X"] = "1"
    buggy_for_large_x(config)


def test_trials_run_again_after_their_failure_are_learnt_from_by_the_searcher(storage):
    from asynctune.store.recovery import restore_searcher

    first = at.run(buggy_for_large_x, config={"x": at.uniform(0, 1)}, num_samples=12, storage_path=storage,
                   name="exp", metric="loss", mode="min", search_alg=at.TPESearch(seed=0), verbose=0)
    failed = [t for t in first.trials if t.status is at.Status.ERROR]
    assert failed and len(failed) < 12
    again = at.resume(os.path.join(storage, "exp"), trainable=fixed_for_large_x, errored="resume")
    assert all(t.status is at.Status.TERMINATED for t in again.trials)
    searcher = at.TPESearch()
    assert restore_searcher(searcher, os.path.join(storage, "exp"))
    # Each trial once, the ones run again included (the searcher had recorded them as failed).
    assert sorted(loss for _, loss in searcher.observations) == sorted(t.config["x"] for t in again.trials)
