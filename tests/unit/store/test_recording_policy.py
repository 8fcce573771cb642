"""Issue 27: the recording mode is a policy object chosen once from the executor's `recording`."""

from __future__ import annotations

import pytest

from asynctune.executors.simulated.executor import SimulatedExecutor, Workload
from asynctune.store.recording import BatchedTrialRecorder, ConsolidatedTrialRecorder, TrialRecorder
from asynctune.store.recording_policy import policy_of, recording_policy


def _workload() -> Workload:
    return Workload("tiny", [{"x": 1}], {"loss": [[1.0, 0.5]]}, [[1.0, 1.0]], metric="loss", mode="min")


@pytest.mark.parametrize("recording, recorder_type, journal", [
    ("files", TrialRecorder, True), ("batched", BatchedTrialRecorder, True),
    ("consolidated", ConsolidatedTrialRecorder, False)])
def test_each_policy_gives_its_writer_and_recorder(tmp_path, recording, recorder_type, journal):
    policy = policy_of(SimulatedExecutor(_workload(), recording=recording))
    writer = policy.writer(str(tmp_path))
    assert (writer is None) == (recording == "files")
    assert (writer is not None and writer.results is not None) == (recording == "consolidated")
    try:
        assert isinstance(policy.recorder(str(tmp_path / "trial_00000"), writer), recorder_type)
    finally:
        if writer is not None:
            writer.close()
    assert policy.journal is journal and policy.resumable is journal


def test_a_wrong_recording_is_refused_naming_the_executor():
    with pytest.raises(ValueError, match=r"SimulatedExecutor: recording must be one of .*got recording='filez'"):
        SimulatedExecutor(_workload(), recording="filez")
    with pytest.raises(ValueError, match="recording must be one of"):
        recording_policy("Files")
