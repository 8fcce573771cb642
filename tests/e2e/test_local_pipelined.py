"""The local executor runs trials pipelined where nothing can tell (issue 27's results/s): where
the scheduler's `synchronous_results` gives a collection and no stop criterion is given, a
result does not wait for its answer, except at the scheduler's sync iterations. Real worker
processes and files: each trial marks every step it computed in its directory, so a test sees
how far the worker ran ahead of the driver, and result.jsonl shows what the driver recorded.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import time


import asynctune as at
from asynctune.worker.session import PIPELINE_WINDOW
from tests.helpers.worker_process import WorkerProcess

# Trainables -------------------------------------------------------------------------------------


def steps(config):
    """Reports config["n"] results (a mutate restarts it with the new config); marks each step
    it computed in its trial folder first, and kills its own worker after config["die_after"]."""
    trial_dir = at.get_trial_dir()
    for step in range(1, config["n"] + 1):
        if step == config.get("die_after", -1) + 1:
            os.kill(os.getpid(), signal.SIGKILL)
        open(os.path.join(trial_dir, f"computed_{config.get('tag', '')}{step}"), "w").close()
        time.sleep(config.get("sleep", 0.0))
        checkpoint = {"step": step} if config.get("checkpoint") else None
        at.report(step=step, tag=config.get("tag", ""), x=config.get("x", 0), checkpoint=checkpoint)


# Helpers ----------------------------------------------------------------------------------------


def rows(trial) -> list[dict]:
    with open(os.path.join(trial.path, "result.jsonl")) as f:
        return [json.loads(line) for line in f]


def iterations(trial) -> list[int]:
    return [r["training_iteration"] for r in rows(trial)]


def computed(trial, tag: str = "") -> set[int]:
    names = glob.glob(os.path.join(trial.path, f"computed_{tag}*"))
    return {int(os.path.basename(p)[len("computed_") + len(tag):]) for p in names if p[-1].isdigit()}


class RanAhead(at.Callback):
    """At result `at` of each trial, waits (up to `wait_s`) until the worker has computed step
    `at + ahead`: it can only while that result's answer is still to come, i.e. pipelined."""

    def __init__(self, at_iteration: int, ahead: int = 1, wait_s: float = 3.0) -> None:
        self.at, self.ahead, self.wait_s = at_iteration, ahead, wait_s
        self.seen: dict[str, bool] = {}

    def on_trial_result(self, trial, result):
        if result["training_iteration"] != self.at:
            return
        target = os.path.join(trial.path, f"computed_{result['tag']}{self.at + self.ahead}")
        deadline = time.monotonic() + self.wait_s
        while not os.path.exists(target) and time.monotonic() < deadline:
            time.sleep(0.005)
        self.seen[trial.trial_id] = os.path.exists(target)


class Scripted(at.Scheduler):
    """Returns `sync` from synchronous_results (a collection: the trial may run pipelined), and
    the decisions in `plan`: {iteration: decision or callable(trial) -> decision}."""

    def __init__(self, sync=frozenset(), plan=None) -> None:
        super().__init__()
        self.sync, self.plan = sync, dict(plan or {})

    def synchronous_results(self, trial):
        return self.sync

    def on_trial_result(self, trial, result):
        decision = self.plan.get(result["training_iteration"], at.CONTINUE)
        return decision(trial, result) if callable(decision) else decision


def run(tmp_path, name, **kwargs):
    return at.run(steps, storage_path=str(tmp_path), name=name, verbose=0, **kwargs)


# FIFO: every result, once, in order ----------------------------------------------------------------


def test_a_fifo_trial_of_thousands_of_results_runs_ahead_and_records_each_once_in_order(tmp_path):
    probe = RanAhead(at_iteration=10, ahead=5)
    analysis = run(tmp_path, "fifo", config={"n": 3000, "x": at.grid_search([0, 1])}, callbacks=[probe],
                   max_concurrent_trials=2)
    for trial in analysis.trials:
        assert trial.status is at.Status.FINISHED
        assert iterations(trial) == list(range(1, 3001))
        assert [r["step"] for r in rows(trial)] == list(range(1, 3001))
        assert computed(trial) == set(range(1, 3001))
    assert probe.seen == {t.trial_id: True for t in analysis.trials}  # the worker did not wait for answers


def test_the_window_bounds_how_far_a_trial_runs_ahead_of_a_driver_that_is_behind(tmp_path):
    class Stall(at.Callback):
        def __init__(self) -> None:
            self.computed_while_stalled: int | None = None

        def on_trial_result(self, trial, result):
            if result["training_iteration"] == 1:
                time.sleep(1.5)  # the driver is behind: nothing is answered meanwhile
                self.computed_while_stalled = len(computed(trial))

    stall = Stall()
    (trial,) = run(tmp_path, "window", config={"n": 4 * PIPELINE_WINDOW}, callbacks=[stall]).trials
    # It ran ahead (pipelined), but no more than the window of unanswered results.
    assert PIPELINE_WINDOW // 2 < stall.computed_while_stalled <= PIPELINE_WINDOW + 1
    assert iterations(trial) == list(range(1, 4 * PIPELINE_WINDOW + 1))


def test_a_worker_holds_back_once_the_window_is_full_and_goes_on_with_each_answer(tmp_path):
    worker = WorkerProcess()
    try:
        worker.run(tmp_path / "t1", steps, {"n": PIPELINE_WINDOW + 20}, pipelined=True)
        sent = [worker.channel.receive() for _ in range(PIPELINE_WINDOW)]
        assert [m[1]["training_iteration"] for m in sent] == list(range(1, PIPELINE_WINDOW + 1))
        time.sleep(0.5)  # the window is full: nothing more comes until an answer does
        assert worker.quiet()
        worker.answer()
        assert worker.channel.receive()[1]["training_iteration"] == PIPELINE_WINDOW + 1
        time.sleep(0.3)
        assert worker.quiet()
        worker.answer(times=21)
        rest = [worker.channel.receive() for _ in range(20)]
        assert [m[0] for m in rest] == ["result"] * 19 + ["done"]
    finally:
        assert worker.close() == 0



# The scheduler's decisions at its sync iterations are exact ----------------------------------------


def test_asha_pipelined_stops_exactly_at_its_rungs_as_it_does_synchronously(tmp_path):
    def asha():
        return at.ASHAScheduler(metric="score", mode="max", max_t=27, grace_period=1, reduction_factor=3)

    config = {"n": 40, "x": at.grid_search(list(range(6))), "sleep": 0.002}
    probe = RanAhead(at_iteration=4, ahead=1)  # between rungs 3 and 9: no answer is awaited there
    pipelined = at.run(scored, config=config, scheduler=asha(), callbacks=[probe], verbose=0,
                       storage_path=str(tmp_path), name="pipelined", max_concurrent_trials=1)
    # A stop criterion that never fires keeps every result synchronous: the reference run.
    synchronous = at.run(scored, config=config, scheduler=asha(), verbose=0, stop={"training_iteration": 1000},
                         storage_path=str(tmp_path), name="synchronous", max_concurrent_trials=1)
    ended = {t.config["x"]: iterations(t) for t in pipelined.trials}
    assert ended == {t.config["x"]: iterations(t) for t in synchronous.trials}
    for trial in pipelined.trials:
        last = iterations(trial)[-1]
        assert last in (1, 3, 9, 27) and iterations(trial) == list(range(1, last + 1))
        assert computed(trial) == set(range(1, last + 1))  # not one step past the rung it stopped at
    assert sorted(ended.values(), key=len)[0] != sorted(ended.values(), key=len)[-1]  # ASHA did stop some
    assert any(probe.seen.values())  # trials that passed rung 3 ran pipelined up to rung 9


def scored(config):
    """`steps`, scoring step/1000 - x: a trial started later is worse at every rung, so ASHA stops some."""
    trial_dir = at.get_trial_dir()
    for step in range(1, config["n"] + 1):
        open(os.path.join(trial_dir, f"computed_{step}"), "w").close()
        time.sleep(config["sleep"])
        at.report(score=step / 1000 - config["x"], tag="")


def test_a_stop_criterion_keeps_every_result_synchronous_and_stops_at_exactly_its_iteration(tmp_path):
    probe = RanAhead(at_iteration=3, ahead=1, wait_s=0.5)
    (trial,) = run(tmp_path, "stop", config={"n": 50}, stop={"training_iteration": 10}, callbacks=[probe]).trials
    assert iterations(trial) == list(range(1, 11))
    assert computed(trial) == set(range(1, 11))  # step 11 never ran
    assert probe.seen == {trial.trial_id: False}
    assert trial.status is at.Status.FINISHED


# Decisions that may land late: nothing extra recorded, nothing missing -------------------------------


def test_a_late_stop_drops_the_results_sent_after_it_and_records_each_iteration_once(tmp_path):
    probe = RanAhead(at_iteration=5, ahead=3)  # steps 6..8 ran (and were sent) before the STOP reached it
    (trial,) = run(tmp_path, "late-stop", config={"n": 100, "checkpoint": True}, scheduler=Scripted(plan={5: at.STOP}),
                   callbacks=[probe]).trials
    assert probe.seen == {trial.trial_id: True}
    assert computed(trial) >= set(range(1, 9))
    assert iterations(trial) == [1, 2, 3, 4, 5]
    assert trial.status is at.Status.EARLY_STOPPED
    # The checkpoints of the dropped results went with them: none is of a step it did not record.
    assert sorted(n for n in os.listdir(trial.path) if n.startswith("checkpoint_")) == \
        [f"checkpoint_{i:06d}" for i in range(1, 6)]
    assert trial.checkpoint.endswith("checkpoint_000005")


class Steps(at.Trainable):
    """`steps` as a class: the worker saves its checkpoints (checkpoint_frequency), before each report."""

    def setup(self, config):
        self.step_count = 0

    def step(self):
        self.step_count += 1
        open(os.path.join(at.get_trial_dir(), f"computed_{self.step_count}"), "w").close()
        return {"step": self.step_count, "tag": ""}

    def save_checkpoint(self, checkpoint_dir):
        return {"step": self.step_count}

    def load_checkpoint(self, checkpoint):
        self.step_count = checkpoint["step"]


def test_a_late_stop_leaves_no_checkpoint_of_a_step_it_did_not_record_by_a_class_trainable(tmp_path):
    probe = RanAhead(at_iteration=5, ahead=3)
    (trial,) = at.run(Steps, scheduler=Scripted(plan={5: at.STOP}), checkpoint_frequency=1, callbacks=[probe],
                      storage_path=str(tmp_path), name="class", verbose=0).trials
    assert probe.seen == {trial.trial_id: True}
    assert iterations(trial) == [1, 2, 3, 4, 5] and max(computed(trial)) >= 8
    assert sorted(n for n in os.listdir(trial.path) if n.startswith("checkpoint_")) == \
        [f"checkpoint_{i:06d}" for i in range(1, 6)]


def test_a_late_stop_gives_the_trial_the_step_it_is_in_before_its_grace_period_runs(tmp_path, caplog):
    # The STOP on result 2 reaches the trial as it reports step 3, a second later: no kill for that.
    (trial,) = run(tmp_path, "slow-steps", config={"n": 6, "sleep": 1.0}, scheduler=Scripted(plan={2: at.STOP}),
                   stop_grace_s=0.3).trials
    assert "has not returned" not in caplog.text
    assert iterations(trial) == [1, 2] and computed(trial) == {1, 2, 3}
    assert trial.status is at.Status.EARLY_STOPPED


def test_a_late_stop_the_trial_ignores_is_still_ended_after_its_step_and_grace_period(tmp_path, caplog):
    (trial,) = at.run(ignores_stop, config={"sleep": 0.2}, scheduler=Scripted(plan={2: at.STOP}), stop_grace_s=0.3,
                      storage_path=str(tmp_path), name="ignores", verbose=0).trials
    assert "has not returned" in caplog.text
    assert iterations(trial) == [1, 2]
    assert trial.status is at.Status.EARLY_STOPPED


def ignores_stop(config):
    """Reports, and runs on after a STOP (it swallows the interrupt report() raises)."""
    step = 0
    while True:
        step += 1
        time.sleep(config["sleep"])
        try:
            at.report(step=step, tag="")
        except BaseException:  # noqa: BLE001  the point: a trial that will not stop
            pass


def test_another_trials_stop_trial_ends_a_pipelined_trial_with_no_duplicate_or_missing_iteration(tmp_path):
    class StopTheOther(Scripted):
        stopped = False

        def on_trial_result(self, trial, result):
            # From trial x=0's 50th result on, once the other has run a few steps (it may start late).
            if trial.config["x"] == 0 and result["training_iteration"] >= 50 and not self.stopped:
                for other in self.control.trials:
                    if other is not trial and other.iteration >= 5:
                        self.control.stop_trial(other)
                        self.stopped = True
            return at.CONTINUE

    probe = RanAhead(at_iteration=2, ahead=1)
    analysis = run(tmp_path, "stop-trial", config={"n": 400, "x": at.grid_search([0, 1]), "sleep": 0.005},
                   scheduler=StopTheOther(), callbacks=[probe], max_concurrent_trials=2)
    first, other = sorted(analysis.trials, key=lambda t: t.config["x"])
    assert probe.seen == {first.trial_id: True, other.trial_id: True}
    assert iterations(first) == list(range(1, 401))
    stopped_at = iterations(other)
    assert stopped_at == list(range(1, len(stopped_at) + 1)) and len(stopped_at) < 400
    assert other.status is at.Status.EARLY_STOPPED


def test_the_time_budget_ends_pipelined_trials_with_no_duplicate_or_missing_iteration(tmp_path):
    probe = RanAhead(at_iteration=2, ahead=1)
    analysis = run(tmp_path, "budget", config={"n": 10**6, "x": at.grid_search([0, 1]), "sleep": 0.001},
                   time_budget_s=1.5, callbacks=[probe], max_concurrent_trials=2)
    for trial in analysis.trials:
        ran = iterations(trial)
        assert len(ran) > 10 and ran == list(range(1, len(ran) + 1))
    assert all(probe.seen.values()) and len(probe.seen) == 2


def test_a_mutate_lands_with_the_mutated_acknowledgement_and_drops_the_old_configs_late_results(tmp_path):
    probe = RanAhead(at_iteration=5, ahead=3)  # the old config ran to step 8 before the MUTATE reached it

    def mutate(trial, result):
        return at.Mutate({**trial.config, "tag": "new", "n": 6}) if result["tag"] == "old" else at.CONTINUE

    # Steps of 50 ms: the old config must still be running when the MUTATE comes, also on a
    # loaded machine (with instant steps its 100 ran out first, under load, and it never came).
    (trial,) = run(tmp_path, "mutate", config={"n": 100, "tag": "old", "sleep": 0.05},
                   scheduler=Scripted(plan={5: mutate}), callbacks=[probe]).trials
    assert probe.seen == {trial.trial_id: True}
    assert computed(trial, "old") >= set(range(1, 9))
    assert [(r["training_iteration"], r["tag"]) for r in rows(trial)] == \
        [(i, "old") for i in range(1, 6)] + [(i, "new") for i in range(6, 12)]
    assert trial.config["tag"] == "new" and trial.status is at.Status.FINISHED


def test_a_mutate_on_an_unnamed_result_that_comes_after_the_trials_end_is_named_in_a_warning(tmp_path, caplog):
    def mutate(trial, result):
        return at.Mutate({**trial.config, "tag": "new", "n": 3}) if result["tag"] == "old" else at.CONTINUE

    # The trial does not wait for the answer to its last result: the MUTATE on it finds it ended.
    (trial,) = run(tmp_path, "mutate-late", config={"n": 5, "tag": "old"}, scheduler=Scripted(plan={5: mutate})).trials
    assert [r["tag"] for r in rows(trial)] == ["old"] * 5
    assert f"trial {trial.trial_id} ended before it took the MUTATE" in caplog.text
    # Named in synchronous_results, the same MUTATE waits for the trial, which runs the new config.
    (trial,) = run(tmp_path, "mutate-named", config={"n": 5, "tag": "old"},
                   scheduler=Scripted(sync={5}, plan={5: mutate})).trials
    assert [(r["training_iteration"], r["tag"]) for r in rows(trial)] == \
        [(i, "old") for i in range(1, 6)] + [(i, "new") for i in range(6, 9)]


# A worker lost mid-run -------------------------------------------------------------------------------


def test_a_worker_killed_mid_pipelined_run_loses_no_result_that_reached_the_driver(tmp_path):
    probe = RanAhead(at_iteration=2, ahead=1)
    (trial,) = run(tmp_path, "killed", config={"n": 5000, "die_after": 2000}, callbacks=[probe],
                   max_failures=0, raise_on_failed_trial=False).trials
    assert probe.seen == {trial.trial_id: True}
    # The worker wrote all 2000 results into its pipe before it was killed: every one is recorded.
    assert iterations(trial) == list(range(1, 2001))
    assert trial.status is at.Status.ERROR
