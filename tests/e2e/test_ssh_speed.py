"""SSH hosts at lab speed (issue 34): no round trip on a slot's critical path that need not be
there. Real sshd servers on 127.0.0.1; a slow link is a user-space delay relay in front of one
(tests/delay_relay.py), so the round trips the executor makes show up as time.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import pickle
import sys
import threading
import time

import pytest

import asynctune as at
from asynctune.store.signing import load_signed_pickle
from tests.helpers.delay_relay import DelayRelay
from tests.helpers.sshd import SSHLab, SSHServer, sshd_missing
from tests.e2e.test_ssh import ASYNCTUNE_ROOT, TESTS_DIR, lab, own_lab  # noqa: F401  (fixtures)

ssh = pytest.importorskip("asynctune.executors.ssh.executor", reason="asyncssh is not installed")

pytestmark = [pytest.mark.ssh, pytest.mark.skipif(sshd_missing() is not None, reason=sshd_missing() or "")]


# Trainables (they travel by reference: tests/ is the hosts' working_dir) ----------------------------


def steps(config):
    """Reports config["n"] results; marks each step it computed in its trial folder first."""
    start = at.get_checkpoint()
    first = start["step"] + 1 if start else 1
    for step in range(first, config["n"] + 1):
        open(os.path.join(at.get_trial_dir(), f"computed_{step}"), "w").close()
        time.sleep(config.get("sleep", 0.0))
        print(f"step {step}", flush=True)
        if config.get("checkpoint"):
            at.report(step=step, host=at.get_trial_resources()["host"], restored=start is not None,
                      checkpoint={"step": step, "pad": b"\0" * config.get("bytes", 0)})
        else:
            at.report(step=step, host=at.get_trial_resources()["host"])


class StopAt(at.Scheduler):
    """Stops every trial at `step`; `sync` is what it tells the executor must be answered at once."""

    def __init__(self, step: int, sync) -> None:
        super().__init__()
        self.step, self.sync = step, sync

    def on_trial_result(self, trial, result):
        return at.STOP if result["step"] >= self.step else at.CONTINUE

    def synchronous_results(self, trial):
        return self.sync


# Helpers ---------------------------------------------------------------------------------------------


def relayed(lab: SSHLab, server: SSHServer, one_way_delay_s: float) -> tuple[DelayRelay, str]:
    """A delay relay in front of `server`, and an ssh_config alias that reaches it."""
    relay = DelayRelay(server.port, one_way_delay_s).start()
    with open(server.host_key + ".pub") as f:
        key_type, key = f.read().split()[:2]
    with open(lab.known_hosts, "a") as f:
        f.write(f"[127.0.0.1]:{relay.port} {key_type} {key}\n")
    alias = f"{server.alias}-via{relay.port}"
    with open(lab.ssh_config, "a") as f:
        f.write(f"Host {alias}\n  HostName 127.0.0.1\n  Port {relay.port}\n  User {lab.user}\n"
                f"  IdentityFile {lab.user_key}\n  UserKnownHostsFile {lab.known_hosts}\n  IdentitiesOnly yes\n")
    return relay, alias


def host(alias: str, remote_root: str, cpus: int = 1, **extra) -> dict:
    return {"host": alias, "python": sys.executable, "workdir": os.path.join(remote_root, alias),
            "env": {"PYTHONPATH": ASYNCTUNE_ROOT}, "cpus": cpus, **extra}


def executor(lab: SSHLab, hosts: list[dict], **options) -> ssh.SSHExecutor:
    return ssh.SSHExecutor(hosts, ssh_config=lab.ssh_config, working_dir=TESTS_DIR, **options)


def rows(trial) -> list[dict]:
    with open(os.path.join(trial.path, "result.jsonl")) as f:
        return [json.loads(line) for line in f]


def computed(remote_root: str, trial) -> set[int]:
    """The steps a trial computed on the hosts (files it made in its remote folder)."""
    paths = glob.glob(os.path.join(remote_root, "*", "experiments", "*", trial.trial_id, "computed_*"))
    return {int(p.rsplit("_", 1)[1]) for p in paths}


class Seen(at.Callback):
    """When each result and each trial's end reached the controller, and what was on disk then."""

    def __init__(self) -> None:
        self.results: list[tuple[float, int, bool]] = []  # (time, step, checkpoint copy present)
        self.ends: dict[str, tuple[float, bool]] = {}  # trial -> (time, stdout.txt present)

    def on_trial_result(self, trial, result):
        self.results.append((time.monotonic(), result["step"], os.path.isdir(trial.checkpoint or "/nonexistent")))

    def on_trial_complete(self, trial):
        self.ends[trial.trial_id] = (time.monotonic(), os.path.exists(os.path.join(trial.path, "stdout.txt")))


# (1) Decisions off the critical path -------------------------------------------------------------------


def test_results_do_not_wait_a_round_trip_and_a_stop_lands_one_step_late(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(lab, lab.servers[0], one_way_delay_s=0.1)  # a 200 ms round trip
    try:
        analysis = at.run(steps, config={"n": 30}, scheduler=StopAt(12, frozenset()), verbose=0,
                          executor=executor(lab, [host(alias, remote_root)], keep_remote_files=True),
                          storage_path=str(tmp_path / "driver"), name="pipelined")
    finally:
        relay.stop()
    (trial,) = analysis.trials
    recorded = rows(trial)
    # Exactly once, and nothing after the stop: the trial ran on while the STOP on 12 travelled
    # (steps of no time: maybe to its end), but none of those results was recorded.
    assert [r["step"] for r in recorded] == list(range(1, 13))
    assert computed(remote_root, trial) >= set(range(1, 14))
    # 12 results took far less than 12 round trips of 200 ms: none waited for its decision.
    worker_time = recorded[-1]["timestamp"] - recorded[0]["timestamp"]
    assert worker_time < 0.8, worker_time


def test_results_the_scheduler_must_answer_still_wait_and_stop_on_time(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(lab, lab.servers[0], one_way_delay_s=0.05)
    try:
        analysis = at.run(steps, config={"n": 30, "x": at.grid_search([0, 1])}, verbose=0,
                          scheduler=StopAt(6, frozenset({6})),  # its rung: answered before step 7
                          executor=executor(lab, [host(alias, remote_root, cpus=2)], keep_remote_files=True),
                          storage_path=str(tmp_path / "driver"), name="rung")
    finally:
        relay.stop()
    for trial in analysis.trials:
        assert [r["step"] for r in rows(trial)] == list(range(1, 7))
        assert computed(remote_root, trial) == set(range(1, 7))


def test_a_training_iteration_stop_criterion_stops_a_pipelined_trial_at_exactly_its_iteration(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(lab, lab.servers[0], one_way_delay_s=0.05)
    try:
        analysis = at.run(steps, config={"n": 30}, stop={"training_iteration": 6, "step": 1000}, verbose=0,
                          executor=executor(lab, [host(alias, remote_root)], keep_remote_files=True),
                          storage_path=str(tmp_path / "driver"), name="stop-at")
    finally:
        relay.stop()
    (trial,) = analysis.trials
    # FIFO pipelines every result, but the one the criterion stops at waits for its answer.
    assert [r["step"] for r in rows(trial)] == list(range(1, 7))
    assert computed(remote_root, trial) == set(range(1, 7))
    assert trial.status is at.Status.FINISHED


def test_a_scheduler_that_needs_every_answer_keeps_the_papers_guarantee(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    analysis = at.run(steps, config={"n": 30}, scheduler=StopAt(4, None), verbose=0,
                      executor=executor(lab, [host(lab.servers[0].alias, remote_root)], keep_remote_files=True),
                      storage_path=str(tmp_path / "driver"), name="every")
    (trial,) = analysis.trials
    assert [r["step"] for r in rows(trial)] == [1, 2, 3, 4]
    assert computed(remote_root, trial) == {1, 2, 3, 4}  # a decision on result k before step k+1


def test_the_local_executor_answers_every_result_when_a_stop_criterion_is_given(tmp_path):
    # Pipelining is the scheduler's to allow, but a stop criterion may end a trial at any result
    # (tests/e2e/test_local_pipelined.py has the local executor pipelining without one).
    analysis = at.run(steps, config={"n": 30}, scheduler=StopAt(4, frozenset()), verbose=0,
                      stop={"training_iteration": 1000},
                      executor=at.LocalExecutor(cpus=1), storage_path=str(tmp_path), name="local")
    (trial,) = analysis.trials
    assert [r["step"] for r in rows(trial)] == [1, 2, 3, 4]
    assert sorted(int(p.rsplit("_", 1)[1]) for p in glob.glob(os.path.join(trial.path, "computed_*"))) == [1, 2, 3, 4]


# (2) Checkpoint copies in the background, (3) logs off the slot ------------------------------------------


def test_checkpoint_copies_and_logs_follow_in_the_background_and_are_whole_at_the_end(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(lab, lab.servers[0], one_way_delay_s=0.1)
    seen = Seen()
    try:
        analysis = at.run(steps, config={"n": 8, "checkpoint": True, "bytes": 100_000}, verbose=0, callbacks=[seen],
                          executor=executor(lab, [host(alias, remote_root)]),
                          storage_path=str(tmp_path / "driver"), name="copies")
    finally:
        relay.stop()
    (trial,) = analysis.trials
    recorded = rows(trial)
    assert [r["step"] for r in recorded] == list(range(1, 9))
    # The results reached the controller before their checkpoints' copies did...
    assert [present for _, _, present in seen.results].count(False) >= 4
    # ...and its end before its logs: the slot waited for neither.
    assert seen.ends[trial.trial_id][1] is False
    # 8 checkpointed results in far less than the 8 x (copy + decision) round trips of before.
    assert recorded[-1]["timestamp"] - recorded[0]["timestamp"] < 1.2
    # At the end every copy is on the driver, whole, and so are the logs.
    for step in range(1, 9):
        assert load_signed_pickle(os.path.join(trial.path, f"checkpoint_{step:06d}", "checkpoint.pkl"))["step"] == step
    assert trial.checkpoint == os.path.join(trial.path, "checkpoint_000008")
    with open(os.path.join(trial.path, "stdout.txt")) as f:
        assert f.read().splitlines() == [f"step {s}" for s in range(1, 9)]
    assert not glob.glob(os.path.join(str(tmp_path / "driver"), "copies", ".copies-*"))  # no half copy left


class KillHostAt(at.Callback):
    """Kills `server` (its sshd, sessions and workers) when the trial on it reports `step`."""

    def __init__(self, server: SSHServer, step: int) -> None:
        self.server, self.step, self.fired = server, step, False

    def on_trial_result(self, trial, result):
        if not self.fired and result["step"] == self.step and result["host"] != "host1":
            self.fired = True
            self.server.kill()


def test_a_lost_host_restarts_its_trial_from_the_newest_complete_copy_exactly_once(own_lab, tmp_path, caplog):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(own_lab, own_lab.servers[0], one_way_delay_s=0.15)  # copies lag behind results
    caplog.set_level(logging.WARNING)
    try:
        analysis = at.run(steps, config={"n": 12, "checkpoint": True, "sleep": 0.05}, max_failures=2, verbose=0,
                          callbacks=[KillHostAt(own_lab.servers[0], 6)],
                          executor=executor(own_lab, [host(alias, remote_root), host("host1", remote_root)],
                                            wait_for_hosts_s=30, reconnect_backoff_s=(5, 10)),
                          storage_path=str(tmp_path / "driver"), name="newest")
    finally:
        relay.stop()
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    recorded = rows(trial)
    assert [r["step"] for r in recorded] == list(range(1, 13))  # exactly once, though some came twice
    retry = next(i for i, r in enumerate(recorded) if r["host"] == "host1")
    restored_from = retry  # the retry's first step is the one after its restore point
    assert 0 <= restored_from < 6
    assert recorded[retry]["restored"] is (restored_from > 0)
    # The restore point was complete on the driver (not the newest reported, whose copy was lost).
    if restored_from:
        assert os.path.isdir(os.path.join(trial.path, f"checkpoint_{restored_from:06d}"))
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(trial.trial_id in m and alias in m and "retry 1" in m and "checkpoint" in m for m in messages), messages
    if restored_from < 6:
        assert any(trial.trial_id in m and "newest complete checkpoint" in m and "host1" in m for m in messages), \
            messages


# (4) Hosts join as they connect ---------------------------------------------------------------------------


def test_start_does_not_wait_for_a_slow_host_which_takes_trials_once_it_joins(lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(lab, lab.servers[1], one_way_delay_s=0.0)
    relay.partition()  # host1 answers nothing until we restore it
    ex = executor(lab, [host("host0", remote_root), host(alias, remote_root)], wait_for_hosts_s=0.5)
    seen = Seen()

    class RestoreAfterFirstResult(at.Callback):
        def on_trial_result(self, trial, result):
            relay.restore()

    started = time.monotonic()
    try:
        analysis = at.run(steps, config={"n": 4, "sleep": 0.4, "x": at.grid_search(list(range(6)))}, verbose=0,
                          executor=ex, callbacks=[seen, RestoreAfterFirstResult()],
                          storage_path=str(tmp_path / "driver"), name="late")
    finally:
        relay.stop()
    first_result = seen.results[0][0] - started
    assert first_result < 8, first_result  # not held until host1's connect timeout (15 s)
    hosts = {rows(t)[0]["host"] for t in analysis.trials}
    assert hosts == {"host0", alias}  # the late host took trials once it had joined
    assert all([r["step"] for r in rows(t)] == [1, 2, 3, 4] for t in analysis.trials)


# (5) Liveness: a silent partition ----------------------------------------------------------------------


class CutAt(at.Callback):
    """Cuts the relay silently when a trial on it reports `step`; restores it `cut_s` later."""

    def __init__(self, relay: DelayRelay, alias: str, step: int, cut_s: float) -> None:
        self.relay, self.alias, self.step, self.cut_s = relay, alias, step, cut_s
        self.cut_at: float | None = None
        self.restored_at: float | None = None

    def on_trial_result(self, trial, result):
        if self.cut_at is None and result["host"] == self.alias and result["step"] == self.step:
            self.cut_at = time.monotonic()
            self.relay.partition()
            timer = threading.Timer(self.cut_s, self._restore)
            timer.daemon = True
            timer.start()

    def _restore(self):
        self.restored_at = time.monotonic()
        self.relay.restore()


def test_a_silent_partition_is_noticed_within_seconds_and_the_host_is_back_within_seconds(own_lab, tmp_path):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(own_lab, own_lab.servers[0], one_way_delay_s=0.0)
    ex = executor(own_lab, [host(alias, remote_root), host("host1", remote_root)], wait_for_hosts_s=30)
    changes: list[tuple[float, bool]] = []
    ex.watch_hosts(lambda: changes.append((time.monotonic(), ex.host_available(alias))))
    cut = CutAt(relay, alias, step=3, cut_s=10)
    try:
        analysis = at.run(steps, config={"n": 30, "sleep": 0.5, "checkpoint": True, "x": at.grid_search([0, 1])},
                          max_failures=3, verbose=0, callbacks=[cut], executor=ex,
                          storage_path=str(tmp_path / "driver"), name="partition")
    finally:
        relay.stop()
    assert cut.cut_at is not None and cut.restored_at is not None
    downs = [t for t, up in changes if not up]
    ups = [t for t, up in changes if up]
    assert downs and downs[0] - cut.cut_at < 5, (downs, cut.cut_at)
    assert ups and cut.restored_at <= ups[0] < cut.restored_at + 5, (ups, cut.restored_at)
    assert not [t for t in downs if t > ups[0]]  # never down again once back
    for trial in analysis.trials:  # every result exactly once, the lost trial's included
        assert trial.status is at.Status.TERMINATED
        assert [r["step"] for r in rows(trial)] == list(range(1, 31))
    assert sum(t.num_failures for t in analysis.trials) == 1


# (6) Stragglers ---------------------------------------------------------------------------------------------


def test_a_slow_host_is_named_in_a_warning(lab, tmp_path, caplog):
    remote_root = str(tmp_path / "remote")
    relay, alias = relayed(lab, lab.servers[1], one_way_delay_s=0.15)  # 300 ms, and every result waits for it
    caplog.set_level(logging.WARNING)
    try:
        analysis = at.run(steps, config={"n": 15, "sleep": 0.02, "x": at.grid_search([0, 1])}, verbose=0,
                          scheduler=StopAt(1000, None),
                          executor=executor(lab, [host("host0", remote_root), host(alias, remote_root)],
                                            wait_for_hosts_s=30),
                          storage_path=str(tmp_path / "driver"), name="straggler")
    finally:
        relay.stop()
    assert {rows(t)[0]["host"] for t in analysis.trials} == {"host0", alias}
    slow = [r.getMessage() for r in caplog.records if "is slow" in r.getMessage()]
    assert len(slow) == 1 and f"host {alias} is slow" in slow[0], slow


def tagged(config):
    """Reports its config's tag n times (a mutate restarts it with the new tag)."""
    for _ in range(config["n"]):
        time.sleep(0.01)
        at.report(tag=config["tag"])


class MutateOnce(at.Scheduler):
    """Switches the trial to tag "new" at its 5th result; lets it run on meanwhile (pipelined)."""

    def on_trial_result(self, trial, result):
        if result["training_iteration"] == 5 and result["tag"] == "old":
            return at.Mutate({**trial.config, "tag": "new", "n": 6})
        return at.CONTINUE

    def synchronous_results(self, trial):
        return frozenset()


def test_a_late_mutate_drops_the_old_configs_results_sent_after_it(lab, tmp_path):
    relay, alias = relayed(lab, lab.servers[0], one_way_delay_s=0.1)
    try:
        analysis = at.run(tagged, config={"n": 40, "tag": "old"}, scheduler=MutateOnce(), verbose=0,
                          executor=executor(lab, [host(alias, str(tmp_path / "remote"))]),
                          storage_path=str(tmp_path / "driver"), name="mutate")
    finally:
        relay.stop()
    recorded = rows(analysis.trials[0])
    # The old config ran on while the MUTATE travelled, but only its results up to the 5th count.
    assert [(r["training_iteration"], r["tag"]) for r in recorded] == \
        [(i, "old") for i in range(1, 6)] + [(i, "new") for i in range(6, 12)]
