"""The pipelined protocol (issue 34) against a real worker process over pipes, without SSH:
a pipelined trial sends its results without waiting for answers, takes a STOP at its next
report, ends without waiting for its last answers, and skips answers that reach it after."""

from __future__ import annotations

import time

import asynctune as at
from tests.helpers.worker_process import WorkerProcess


def counts(config):
    for i in range(config["n"]):
        time.sleep(config["sleep"])
        at.report(i=i)


def test_a_pipelined_trial_sends_its_results_without_waiting_and_ends_without_waiting(tmp_path):
    worker = WorkerProcess()
    try:
        worker.run(tmp_path / "t1", counts, {"n": 5, "sleep": 0.0}, pipelined=True)
        # Nothing answered, yet every result and the end arrive.
        messages = [worker.channel.receive() for _ in range(6)]
        assert [m[0] for m in messages] == ["result"] * 5 + ["done"]
        assert [m[1]["i"] for m in messages[:5]] == [0, 1, 2, 3, 4] and messages[5][1] == "finished"
        # Answers sent before the driver saw the end are skipped; the worker takes the next trial.
        worker.answer(times=5)
        worker.run(tmp_path / "t2", counts, {"n": 2, "sleep": 0.0})  # not pipelined: each result waits
        assert worker.channel.receive()[0] == "result"
        worker.answer(at.STOP)
        assert worker.channel.receive()[:2] == ("done", "stopped")
    finally:
        assert worker.close() == 0


def test_a_pipelined_stop_lands_at_the_next_report_and_nothing_after_it_is_sent(tmp_path):
    worker = WorkerProcess()
    try:
        worker.run(tmp_path / "t1", counts, {"n": 100, "sleep": 0.05}, pipelined=True)
        first = worker.channel.receive()
        worker.answer(at.STOP)  # the answer to result 0
        rest = []
        while (message := worker.channel.receive())[0] == "result":
            rest.append(message[1]["i"])
        assert message[:2] == ("done", "stopped") and first[1]["i"] == 0
        assert len(rest) <= 3  # the results sent while the STOP travelled (the driver drops them)
    finally:
        assert worker.close() == 0


def test_results_at_sync_iterations_wait_for_every_answer(tmp_path):
    worker = WorkerProcess()
    try:
        worker.run(tmp_path / "t1", counts, {"n": 6, "sleep": 0.0}, pipelined=True, sync_iterations=frozenset({3}))
        results = [worker.channel.receive() for _ in range(3)]
        assert [r[1]["training_iteration"] for r in results] == [1, 2, 3]
        time.sleep(0.5)  # it waits at iteration 3: nothing more comes until 1, 2 and 3 are answered
        assert worker.quiet()
        worker.answer(times=3)
        after = [worker.channel.receive() for _ in range(4)]
        assert [m[0] for m in after] == ["result"] * 3 + ["done"]
    finally:
        assert worker.close() == 0
