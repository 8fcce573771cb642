"""A real worker process (`python -m asynctune.worker`) driven over its pipes as a driver would,
without an executor: tests of what the worker itself does with a request."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

from asynctune.core.trial import CONTINUE, Decision
from asynctune.worker.protocol import EXIT_FRAME, BlockingChannel, TrialRequest, encode_decision, run_frame
from tests.helpers.paths import REPO_ROOT


class WorkerProcess:
    """One worker on this checkout's asynctune; `env` is added to this process's environment.
    Trainables pickled by name (module-level in a test module) must be importable from REPO_ROOT."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **(env or {}), "PYTHONPATH": REPO_ROOT}
        self.process = subprocess.Popen([sys.executable, "-m", "asynctune.worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
        self.channel = BlockingChannel(self.process.stdout.fileno(), self.process.stdin.fileno())
        assert self.channel.receive()[0] == "ready"

    def run(self, trial_dir: os.PathLike[str] | str, trainable: Callable[[dict], Any], config: dict,
            leave_out: Sequence[str] = (), **options: Any) -> None:
        """Start a trial in `trial_dir` (its id is the folder's name); `options` are TrialRequest's,
        and the fields named in `leave_out` are not sent at all (as from an older driver)."""
        trial_dir, blob = os.fspath(trial_dir), cloudpickle.dumps(trainable)
        # The worker keeps each trainable under its key: one key per trainable.
        request = TrialRequest(trial_id=os.path.basename(trial_dir), trial_dir=trial_dir, config=config,
                               trainable_key=hashlib.sha256(blob).hexdigest(), trainable_blob=blob, **options)
        for name in leave_out:
            del request.__dict__[name]
        os.write(self.channel.write_fd, run_frame(request))

    def answer(self, decision: Decision = CONTINUE, times: int = 1) -> None:
        """Send `decision` as the answer to the next `times` results, as the driver would."""
        os.write(self.channel.write_fd, encode_decision(decision) * times)

    def quiet(self) -> bool:
        """Whether the worker has sent nothing that is not read yet."""
        os.set_blocking(self.channel.read_fd, False)
        try:
            return os.read(self.channel.read_fd, 1 << 16) == b""
        except BlockingIOError:
            return True
        finally:
            os.set_blocking(self.channel.read_fd, True)

    def close(self) -> int:
        os.write(self.channel.write_fd, EXIT_FRAME)
        return self.process.wait(10)
