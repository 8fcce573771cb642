"""For integration tests: a trial's worker that dies for real, once, after its first checkpoints."""

from __future__ import annotations

import os

import asynctune as at


def die_once_after_a_checkpoint(after_iteration: int = 5) -> None:
    """Call at the top of a trainable: on its first attempt, the worker process exits (no exception
    the trainable could catch) right after the first report at or past `after_iteration` that
    has a checkpoint behind it; the retry then resumes from that checkpoint."""
    flag = os.path.join(at.get_trial_dir(), "died_once")
    if os.path.exists(flag):
        return
    open(flag, "w").close()
    import asynctune.worker.session as session

    real_report = session.TrialSession.report

    def report_then_die(self, metrics, checkpoint=None, **kwargs):
        real_report(self, metrics, checkpoint, **kwargs)
        if self.iteration >= after_iteration and self.last_checkpoint is not None:
            os._exit(3)

    session.TrialSession.report = report_then_die
