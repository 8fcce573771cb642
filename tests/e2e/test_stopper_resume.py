"""A stopper that keeps state (a plateau, a patience count) goes on after a resume with the
history it had: the driver replays the recorded results to it, as it does to the scheduler. A
real driver process is killed mid-run; the resume runs real workers."""

from __future__ import annotations

import os
import textwrap

import asynctune as at
from tests.helpers.held_driver import kill_held

DRIVER = textwrap.dedent("""
    import os, sys, time
    import asynctune as at

    HOLD = sys.argv[2]

    class ThreeResultsEach(at.Stopper):
        # Counts each trial's results itself, as a plateau stopper keeps each trial's history.
        def __init__(self):
            self.seen = {}

        def __call__(self, trial_id, result):
            self.seen[trial_id] = self.seen.get(trial_id, 0) + 1
            return self.seen[trial_id] >= 3

    def train(config):
        start = (at.get_checkpoint() or {}).get("i", 0)
        for i in range(start, 6):
            while i >= 2 and os.path.exists(HOLD):
                time.sleep(0.02)
            at.report(loss=config["x"] + i, checkpoint={"i": i + 1})

    at.run(train, config={"x": at.grid_search([0, 1])}, storage_path=sys.argv[1], name="exp",
           metric="loss", mode="min", stop=ThreeResultsEach(), verbose=0)
""")


def test_a_stateful_stopper_keeps_its_history_across_a_resume(storage, tmp_path):
    kill_held(tmp_path, DRIVER, storage, results=4)  # two results each, then the driver is killed

    analysis = at.resume(os.path.join(storage, "exp"), verbose=0)
    for trial in analysis.trials:
        # Without the replay the stopper counted from zero again and each trial ran to 5 results.
        assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1, 2, 3]


class EndsAfterFiveResults(at.Stopper):
    """Ends the experiment once it has seen five results in all (a plateau of the whole search)."""

    def __init__(self):
        self.seen = 0

    def __call__(self, trial_id, result):
        self.seen += 1
        return False

    def stop_all(self):
        return self.seen >= 5


def three_results(config):
    for i in range(3):
        at.report(loss=config["x"] + i)


def test_an_experiment_its_stopper_ended_starts_no_trial_when_resumed(storage):
    first = at.run(three_results, config={"x": at.grid_search([1, 2, 3, 4])}, stop=EndsAfterFiveResults(),
                   max_concurrent_trials=1, storage_path=storage, name="ended", verbose=0)
    assert first.status == "STOPPED"
    before = {t.trial_id: t.num_results for t in first.trials}
    # Before: the replayed stopper said stop_all, yet an untried trial started and ran to its first result.
    again = at.resume(first.experiment_dir, verbose=0)
    assert {t.trial_id: t.num_results for t in again.trials if t.num_results} == before
