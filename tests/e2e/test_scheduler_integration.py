"""The schedulers with real worker processes: pausing, resuming from a checkpoint, PBT cloning.

The trainable keeps its state in its checkpoint: a counter, and the id of the trial that wrote
it. A trial that resumes continues its count (it did not restart); a trial that exploits
another continues *that* trial's count and sees its id.
"""

from __future__ import annotations

import json
import os
import sys
import time

import cloudpickle
import pytest

import asynctune as at

# Workers need not import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def counter(config):
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    written_by = checkpoint["written_by"] if checkpoint else None
    while True:
        count += 1
        time.sleep(config.get("sleep", 0.005))
        at.report(score=config["x"] * count, count=count, restored_from=written_by,
                  checkpoint={"count": count, "written_by": at.get_trial_id()})


def results(trial) -> list[dict]:
    with open(os.path.join(trial.path, "result.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_resumed_not_restarted(trial) -> None:
    """The counter goes on across pauses: count == training_iteration, 1, 2, 3, ..."""
    rows = results(trial)
    assert [r["count"] for r in rows] == [r["training_iteration"] for r in rows] == list(range(1, len(rows) + 1))


def test_hyperband_pauses_the_rung_and_resumes_the_best_from_its_checkpoint(tmp_path):
    # R=3, eta=3: bracket s=1 takes 3 trials at r=1; the best one resumes to 3, the others stop.
    # One worker: x=3 and x=1 pause at the rung, x=2 completes it (and stops), x=3 resumes.
    analysis = at.run(counter, config={"x": at.grid_search([3, 1, 2])}, metric="score", mode="max",
                      scheduler=at.HyperBandScheduler(max_t=3, reduction_factor=3), max_concurrent_trials=1,
                      storage_path=str(tmp_path), name="hb", verbose=0)
    by_x = {t.config["x"]: t for t in analysis.trials}
    assert [len(results(by_x[x])) for x in (1, 2, 3)] == [1, 1, 3]
    best = results(by_x[3])
    assert_resumed_not_restarted(by_x[3])
    assert [r["restored_from"] for r in best] == [None, by_x[3].trial_id, by_x[3].trial_id]
    assert all(t.status in (at.Status.FINISHED, at.Status.EARLY_STOPPED) for t in analysis.trials)


def test_hyperband_closes_a_short_bracket_when_num_samples_is_reached(tmp_path):
    # The bracket wants 3 trials; only 2 come. Once the searcher is done, the better one goes on.
    analysis = at.run(counter, config={"x": at.grid_search([2, 1])}, metric="score", mode="max",
                      scheduler=at.HyperBandScheduler(max_t=3, reduction_factor=3), max_concurrent_trials=1,
                      storage_path=str(tmp_path), name="hb-short", verbose=0)
    by_x = {t.config["x"]: t for t in analysis.trials}
    assert [len(results(by_x[x])) for x in (1, 2)] == [1, 3]
    assert [r["restored_from"] for r in results(by_x[2])] == [None, by_x[2].trial_id, by_x[2].trial_id]
    assert_resumed_not_restarted(by_x[2])


def test_asha_promotion_resumes_paused_trials_from_their_checkpoints(tmp_path):
    # eta=2, rungs at 1 and 2, R=4; 4 trials on 1 worker, so the order is fixed:
    # x=1 pauses at rung 1 (alone: top 0); x=4 is the top 1 of 2 and continues, pauses at rung 2;
    # x=2 is not in the top 1 of 3 and pauses; x=3 is in the top 2 of 4 and continues to rung 2,
    # where x=4 (paused, better) is the one to promote: x=3 pauses, x=4 resumes and runs to R.
    scheduler = at.ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2, variant="promotion")
    analysis = at.run(counter, config={"x": at.grid_search([1, 4, 2, 3])}, metric="score", mode="max",
                      scheduler=scheduler, max_concurrent_trials=1, storage_path=str(tmp_path), name="asha",
                      verbose=0)
    by_x = {t.config["x"]: t for t in analysis.trials}
    assert {x: len(results(t)) for x, t in by_x.items()} == {1: 1, 4: 4, 2: 1, 3: 2}
    best = by_x[4]
    assert [r["restored_from"] for r in results(best)] == [None, None, best.trial_id, best.trial_id]
    assert_resumed_not_restarted(best)
    assert all(t.status in (at.Status.FINISHED, at.Status.EARLY_STOPPED) for t in analysis.trials)


def test_asha_stopping_stops_the_bottom_trials_early(tmp_path):
    scheduler = at.ASHAScheduler(max_t=6, grace_period=2, reduction_factor=3)
    analysis = at.run(counter, config={"x": at.grid_search([3, 2, 1])}, metric="score", mode="max",
                      scheduler=scheduler, max_concurrent_trials=1, storage_path=str(tmp_path), name="asha-stop",
                      verbose=0)
    # One at a time, best first: x=2 and x=1 are below the 2/3 quantile of the rung at 2.
    assert [t.iteration for t in analysis.trials] == [6, 2, 2]


def test_median_stopping_soft_mode_pauses_and_later_finishes_the_loser(tmp_path):
    scheduler = at.MedianStoppingRule(grace_period=2, min_samples_required=2, hard_stop=False)
    analysis = at.run(counter, config={"x": at.grid_search([3, 2, 1])}, metric="score", mode="max",
                      scheduler=scheduler, stop={"training_iteration": 4}, max_concurrent_trials=1,
                      storage_path=str(tmp_path), name="median", verbose=0)
    loser = analysis.trials[2]
    rows = results(loser)
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]  # paused at 2, resumed at the end
    assert rows[2]["restored_from"] == loser.trial_id
    assert_resumed_not_restarted(loser)


def test_pbt_clones_the_donors_checkpoint_and_records_the_lineage(tmp_path):
    # One worker: the strong trial (score = 8 * count) trains to 6 first; the weak one, at its
    # first perturbation (step 2), is in the bottom half and clones the strong one's checkpoint.
    values = [1, 2, 3, 4, 5, 6, 7, 8]
    scheduler = at.PopulationBasedTraining(perturbation_interval=2, quantile_fraction=0.5,
                                           hyperparam_mutations={"x": values}, seed=0)
    analysis = at.run(counter, config={"x": at.grid_search([8, 1])}, metric="score", mode="max",
                      scheduler=scheduler, stop={"training_iteration": 6}, max_concurrent_trials=1,
                      storage_path=str(tmp_path), name="pbt", verbose=0)
    strong, weak = analysis.trials
    assert weak.lineage and not strong.lineage
    entry = weak.lineage[0]
    assert entry["donor"] == strong.trial_id
    assert entry["old_config"] == {"x": 1} and entry["donor_config"] == {"x": 8}
    assert entry["donor_checkpoint"].startswith(strong.path)
    assert entry["new_config"]["x"] in values
    rows = results(weak)
    first = next(i for i, r in enumerate(rows) if r["restored_from"] == strong.trial_id)
    assert first == entry["training_iteration"] == 2
    # It went on from the donor's checkpoint (its counter and iteration), with the new config.
    with open(os.path.join(entry["donor_checkpoint"], ".asynctune.json")) as f:
        donor_iteration = json.load(f)["iteration"]
    assert rows[first]["count"] == rows[first]["training_iteration"] == donor_iteration + 1
    assert rows[first]["score"] == entry["new_config"]["x"] * rows[first]["count"]
    with open(os.path.join(weak.path, "params.json")) as f:
        assert json.load(f) == weak.config == weak.lineage[-1]["new_config"]


@pytest.mark.parametrize("scheduler", [
    at.MedianStoppingRule(), at.ASHAScheduler(), at.HyperBandScheduler(), at.PopulationBasedTraining(
        hyperparam_mutations={"x": [1, 2]})], ids=["median", "asha", "hyperband", "pbt"])
def test_a_missing_metric_is_reported_before_any_trial_starts(tmp_path, scheduler):
    with pytest.raises(ValueError, match="pass metric= and mode= here or to run"):
        at.run(counter, config={"x": 1}, scheduler=scheduler, storage_path=str(tmp_path), verbose=0)
    assert not os.path.exists(os.path.join(str(tmp_path), "trial_00000"))


def counter_failing_once_after_a_clone(config):
    """`counter`, but the first step after restoring another trial's checkpoint fails once (say the
    new config runs out of memory); the marker file makes the retry go through."""
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    written_by = checkpoint["written_by"] if checkpoint else None
    marker = os.path.join(config["marker_dir"], at.get_trial_id())
    if written_by not in (None, at.get_trial_id()) and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first step with the clone's config failed")
    while True:
        count += 1
        time.sleep(0.005)
        at.report(score=config["x"] * count, count=count, restored_from=written_by,
                  checkpoint={"count": count, "written_by": at.get_trial_id()})


def counter_whose_first_pause_fails(config):
    """counter, but the first interruption of a trial given a marker (HyperBand's pause at a rung)
    ends it with an error instead: the trial fails as it pauses, and is retried."""
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    while True:
        count += 1
        time.sleep(config["sleep"])
        try:
            at.report(score=config["x"] * count, count=count, checkpoint={"count": count, "written_by": at.get_trial_id()})
        except BaseException:
            marker = config.get("marker")
            if marker and not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("the trial failed as it paused") from None
            raise


def test_hyperband_a_trial_retried_after_failing_at_a_rung_waits_there_again(tmp_path):
    # R=9, eta=3: the first bracket (s=2, r=1) closes with the 3 trials there are. x=1 is fast: it
    # reaches the rung first, fails as it pauses, and is retried from its checkpoint at the rung,
    # while x=2 and x=3 take a second per step. The old code had it scored already and let it run
    # on past the rung (and past max_t) until the slow trials completed the rung; it must wait at
    # the rung again, and then stop there, being the worst.
    analysis = at.run(counter_whose_first_pause_fails,
                      config={"x": at.grid_search([1, 2, 3]), "marker": str(tmp_path / "failed-once"),
                              "sleep": at.sample_from(lambda spec: 0.005 if spec.config["x"] == 1 else 1.0)},
                      metric="score", mode="max", scheduler=at.HyperBandScheduler(max_t=9, reduction_factor=3),
                      max_failures=1, storage_path=str(tmp_path), name="hb-retry", verbose=0)
    by_x = {t.config["x"]: t for t in analysis.trials}
    retried = by_x[1]
    assert retried.num_failures == 1 and retried.status is at.Status.EARLY_STOPPED
    assert [r["training_iteration"] for r in results(retried)] == [1, 2]  # one step past the rung, not on to max_t
    assert len(results(by_x[3])) == 9


def test_asha_promotion_a_trial_retried_after_failing_at_a_rung_is_not_promoted(tmp_path):
    # Rungs at 1 and 3 (max_t=9, eta=3). x=1 is fast: it reaches rung 1 first, fails as it
    # pauses there, and is retried. The old code took its running again for a promotion and let
    # it run to the next rung without being in the top third; it must wait at rung 1 again, where
    # it stays (the worst of three).
    analysis = at.run(counter_whose_first_pause_fails,
                      config={"x": at.grid_search([1, 2, 3]), "marker": str(tmp_path / "failed-once"),
                              "sleep": at.sample_from(lambda spec: 0.005 if spec.config["x"] == 1 else 0.5)},
                      metric="score", mode="max",
                      scheduler=at.ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3, variant="promotion"),
                      max_failures=1, storage_path=str(tmp_path), name="asha-retry", verbose=0)
    retried = {t.config["x"]: t for t in analysis.trials}[1]
    assert retried.num_failures == 1
    assert [r["training_iteration"] for r in results(retried)] == [1, 2]  # one step past rung 1, not on to 3


def test_pbt_a_clone_that_fails_retries_from_the_donors_checkpoint_not_its_own(tmp_path):
    # One worker: the weak trial exploits the strong one while the strong one waits paused, so its
    # clone is a pause then a resume from the donor's checkpoint. Its first step with the new config
    # fails; the retry must start from that same donor checkpoint (the old code: from the weak
    # trial's own pause checkpoint, its discarded weights under the clone's config).
    scheduler = at.PopulationBasedTraining(perturbation_interval=2, quantile_fraction=0.5,
                                           hyperparam_mutations={"x": [1, 2, 3, 4, 5, 6, 7, 8]}, seed=0)
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    analysis = at.run(counter_failing_once_after_a_clone,
                      config={"x": at.grid_search([8, 1]), "marker_dir": str(marker_dir)},
                      metric="score", mode="max", scheduler=scheduler, stop={"training_iteration": 6},
                      max_concurrent_trials=1, max_failures=1, storage_path=str(tmp_path), name="pbt-retry",
                      verbose=0)
    strong, weak = analysis.trials
    assert weak.num_failures == 1 and weak.status is at.Status.FINISHED
    entry = weak.lineage[0]
    assert entry["donor"] == strong.trial_id
    rows = results(weak)
    after = rows[entry["training_iteration"]:]  # the results after the exploit (the failed step reported none)
    assert after and after[0]["restored_from"] == strong.trial_id, [r["restored_from"] for r in rows]
    with open(os.path.join(entry["donor_checkpoint"], ".asynctune.json")) as f:
        donor_iteration = json.load(f)["iteration"]
    assert after[0]["count"] == after[0]["training_iteration"] == donor_iteration + 1


@pytest.mark.parametrize("scheduler", [
    at.MedianStoppingRule(time_attr="epoch"), at.ASHAScheduler(time_attr="epoch", max_t=3),
    at.HyperBandScheduler(time_attr="epoch", max_t=3),
    at.PopulationBasedTraining(time_attr="epoch", hyperparam_mutations={"x": [1, 2]})],
    ids=["median", "asha", "hyperband", "pbt"])
def test_a_time_attr_never_reported_ends_the_run_at_the_first_result(tmp_path, scheduler):
    # The trainable reports `count`, not `epoch`: on the old code no trial ever reached a rung or a
    # perturbation, and the run finished as if with FIFO, silently.
    with pytest.raises(ValueError, match=r"time_attr='epoch' \(of \w+\) is not in trial_\d+'s first result"):
        at.run(counter, config={"x": at.grid_search([1, 2])}, metric="score", mode="max", scheduler=scheduler,
               stop={"training_iteration": 4}, storage_path=str(tmp_path), verbose=0)


def counts_to_six(config):
    checkpoint = at.get_checkpoint()
    step = checkpoint["step"] if checkpoint else 0
    while step < 6:
        step += 1
        at.report(score=config["x"] * step, checkpoint={"step": step})


def test_a_trial_resumed_at_its_end_is_not_said_to_have_never_reported(tmp_path, caplog):
    # PBT pauses the trials in turns, also after their last step; resumed there, the function
    # returns at once. The old code warned, for every trial, that its trainable "never called
    # asynctune.report" although each had reported 6 results.
    scheduler = at.PopulationBasedTraining(perturbation_interval=3, quantile_fraction=0.5,
                                           hyperparam_mutations={"x": [1, 2, 3, 4]}, seed=0)
    with caplog.at_level("WARNING"):
        analysis = at.run(counts_to_six, config={"x": at.grid_search([1, 2, 3, 4])}, metric="score", mode="max",
                          scheduler=scheduler, storage_path=str(tmp_path), name="pbt-end", verbose=0)
    assert [t.num_results for t in analysis.trials] == [6, 6, 6, 6]
    assert "never called" not in caplog.text
