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
