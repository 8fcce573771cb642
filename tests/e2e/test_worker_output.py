"""A trial's output files, against a real worker process over pipes: the empty stdout.txt /
stderr.txt a trial leaves go on to the worker's next trial only where its request says so
(TrialRequest.hand_on_empty_output, which the local executor sets; SSH and Dask do not)."""

from __future__ import annotations

import os

import asynctune as at
from asynctune.executors.leftovers import MARK_ENV
from tests.helpers.worker_process import WorkerProcess


def prints_nothing(config):
    at.report(x=1)


def _output_files_of_two_trials(worker: WorkerProcess, folder, **options) -> dict[str, list[str]]:
    """Run two trials that print nothing, one after the other; the files each trial's folder holds."""
    for name in ("t1", "t2"):
        worker.run(folder / name, prints_nothing, {}, **options)
        assert worker.channel.receive()[0] == "result"
        worker.answer()
        assert worker.channel.receive()[:2] == ("done", "finished")
    return {name: sorted(os.listdir(folder / name)) for name in ("t1", "t2")}


def test_empty_output_goes_on_to_the_next_trial_only_when_the_request_says_so(tmp_path):
    own = ["stderr.txt", "stdout.txt"]
    # The leftover-process mark in the environment says nothing about output: a request that
    # leaves the field at its default (SSH's, where the driver copies a trial's output while the
    # worker runs the next) or does not carry it at all (an older driver's) keeps each trial's
    # own files.
    marked = WorkerProcess(env={MARK_ENV: "0123456789abcdef"})
    try:
        assert _output_files_of_two_trials(marked, tmp_path / "marked") == {"t1": own, "t2": own}
        older = _output_files_of_two_trials(marked, tmp_path / "older", leave_out=["hand_on_empty_output"])
        assert older == {"t1": own, "t2": own}
    finally:
        assert marked.close() == 0
    # The field alone hands them on, without the mark.
    unmarked = WorkerProcess()
    try:
        handed = _output_files_of_two_trials(unmarked, tmp_path / "unmarked", hand_on_empty_output=True)
        assert handed == {"t1": [], "t2": own}  # the last trial on the worker keeps its own
    finally:
        assert unmarked.close() == 0
