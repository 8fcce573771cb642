"""The recording mode as an object, chosen once from the executor's `recording`.

An executor says how its results are written (`Executor.recording`, a string users pass, e.g.
`SimulatedExecutor(recording="batched")`). The driver turns it into a RecordingPolicy once, at
the start, and every place that behaves differently per mode asks the policy what to do instead
of comparing strings: whether writes are batched on a thread, whether there is a journal and
trial directories, where the consolidated results go, which recorder a trial gets.

    >>> policy = recording_policy("batched")
    >>> policy.batched, policy.consolidated, policy.journal, policy.resumable
    (True, False, True, True)
    >>> recording_policy("filez")
    Traceback (most recent call last):
    ...
    ValueError: recording must be one of ('files', 'batched', 'consolidated'), got recording='filez'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .names import results_file
from .recording import RECORDINGS, BatchWriter, Recorder, make_recorder


@dataclass(frozen=True)
class RecordingPolicy:
    """How results reach the experiment directory.

    Attributes:
        name: The executor's `recording` ("files", "batched" or "consolidated").
        batched: Writes go through a BatchWriter thread (state flushed about once a second), not
            one write per result: a simulation's modes.
        consolidated: Every trial's results in one results.jsonl at the top, no journal and no
            trial directories except for checkpoints: such a run is rerun, not resumed.
    """

    name: str
    batched: bool
    consolidated: bool

    @property
    def journal(self) -> bool:
        """Whether the run keeps a journal (what resume rebuilds the trial table from)."""
        return not self.consolidated

    @property
    def resumable(self) -> bool:
        """Whether a run recorded so can be resumed from its trial directories and journal."""
        return not self.consolidated

    @property
    def writes_each_result(self) -> bool:
        """Whether each result is on disk as it arrives (so results missing at the end were deleted)."""
        return not self.batched

    def writer(self, experiment_dir: str) -> BatchWriter | None:
        """The experiment's BatchWriter (batched modes), holding results.jsonl when consolidated."""
        if not self.batched:
            return None
        return BatchWriter(results_file(experiment_dir) if self.consolidated else None)

    def recorder(self, trial_dir: str, writer: BatchWriter | None) -> Recorder:
        """The recorder of one trial's results (`writer`: the one `writer()` made)."""
        return make_recorder(trial_dir, self.name, writer=writer)


POLICIES = {
    "files": RecordingPolicy("files", batched=False, consolidated=False),
    "batched": RecordingPolicy("batched", batched=True, consolidated=False),
    "consolidated": RecordingPolicy("consolidated", batched=True, consolidated=True),
}
assert tuple(POLICIES) == RECORDINGS


def recording_policy(recording: str, *, who: str = "") -> RecordingPolicy:
    """The policy for an executor's `recording`; ValueError naming `who` for anything else."""
    try:
        return POLICIES[recording]
    except (KeyError, TypeError):
        prefix = f"{who}: " if who else ""
        raise ValueError(f"{prefix}recording must be one of {RECORDINGS}, got {recording=}") from None


def policy_of(executor: Any) -> RecordingPolicy:
    """The policy of `executor` (one without a `recording`, or None, records "files")."""
    return recording_policy(getattr(executor, "recording", "files"), who=type(executor).__name__)
