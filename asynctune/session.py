"""The trial side of the narrow waist: what a training function calls inside a worker.

    def train(config):
        start = asynctune.get_checkpoint() or {"epoch": 0}
        for epoch in range(start["epoch"], 100):
            loss = ...
            asynctune.report(loss=loss, checkpoint={"epoch": epoch + 1})

`report()` sends the result to the driver and waits for the decision on it, so a decision on
result k (stop, pause, mutate) is in force before step k+1 starts.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
from collections.abc import Mapping
from typing import Any

from .errors import AsynctuneError
from .executors.protocol import read_decision
from .trial import Decision
from .safe_files import load_pickle_private, make_tree_private, open_private
from .store import checkpoints

CHECKPOINT_DATA = "checkpoint.pkl"  # a dict checkpoint, pickled inside its directory
CHECKPOINT_META = ".asynctune.json"  # iteration and time the checkpoint was taken at


class _TrialInterrupt(BaseException):
    """Unwinds the trainable when a decision ends or changes it (not an error: BaseException)."""


class StopTrial(_TrialInterrupt):
    pass


class PauseTrial(_TrialInterrupt):
    pass


class MutateTrial(_TrialInterrupt):
    def __init__(self, config: dict[str, Any], checkpoint: str | None) -> None:
        super().__init__()
        self.config, self.checkpoint = config, checkpoint


class TrialSession:
    """The running trial, as seen from inside its worker."""

    def __init__(self, channel: Any, request: Any) -> None:
        self.channel = channel
        self.request = request
        self.trial_id: str = request.trial_id
        self.trial_dir: str = request.trial_dir
        self.config: dict[str, Any] = request.config
        self.iteration: int = request.start_iteration
        self.time_total: float = request.start_time_total
        self.restore_checkpoint: str | None = request.restore_checkpoint
        self.last_checkpoint: str | None = request.restore_checkpoint
        self._last_time = time.time()
        self._hostname = socket.gethostname()
        self._pid = os.getpid()

    # Results -----------------------------------------------------------------------------------

    def report(self, metrics: Mapping[str, Any], checkpoint: Any = None, *, checkpoint_dir: str | None = None) -> None:
        now = time.time()
        elapsed = now - self._last_time
        self._last_time = now
        self.iteration += 1
        self.time_total += elapsed
        result = dict(metrics)
        result.update(
            trial_id=self.trial_id, training_iteration=self.iteration, time_this_iter_s=elapsed,
            time_total_s=self.time_total, timestamp=now, hostname=self._hostname, pid=self._pid,
        )
        if checkpoint is not None:
            checkpoint_dir = self.save_checkpoint(checkpoint)
        if checkpoint_dir is not None:
            self.last_checkpoint = checkpoint_dir
        self.channel.send(("result", result, checkpoint_dir))
        decision = read_decision(self.channel.receive())
        # The time spent waiting for the decision is the framework's, not the trial's.
        self._last_time = time.time()
        if decision is Decision.CONTINUE:
            return
        if decision is Decision.STOP:
            raise StopTrial()
        if decision is Decision.PAUSE:
            raise PauseTrial()
        raise MutateTrial(decision.config, decision.checkpoint)

    # Checkpoints -------------------------------------------------------------------------------

    def new_checkpoint_dir(self) -> str:
        """An empty directory to fill; `publish_checkpoint` gives it its name once it is complete."""
        return checkpoints.staging_dir(self.trial_dir, f"checkpoint_{self.iteration:06d}")

    def publish_checkpoint(self, staging: str) -> str:
        """Write the metadata into the complete checkpoint `staging` and rename it into place."""
        self.write_checkpoint_meta(staging)
        return checkpoints.publish(staging, os.path.join(self.trial_dir, f"checkpoint_{self.iteration:06d}"))

    def save_checkpoint(self, checkpoint: Any) -> str:
        """Keep a dict or a directory as this iteration's checkpoint; return its directory."""
        target = self.new_checkpoint_dir()
        if isinstance(checkpoint, Mapping):
            with open_private(os.path.join(target, CHECKPOINT_DATA), "wb") as f:
                pickle.dump(dict(checkpoint), f, protocol=pickle.HIGHEST_PROTOCOL)
        elif isinstance(checkpoint, (str, os.PathLike)) and os.path.isdir(checkpoint):
            if os.path.realpath(checkpoint) != os.path.realpath(target):
                shutil.copytree(checkpoint, target, dirs_exist_ok=True)
            make_tree_private(target)  # copytree kept the modes of the trial's own files
        else:
            shutil.rmtree(target, ignore_errors=True)
            raise TypeError(
                f"checkpoint must be a dict or an existing directory, got {type(checkpoint).__name__}: {checkpoint!r}"
            )
        return self.publish_checkpoint(target)

    def write_checkpoint_meta(self, path: str) -> None:
        with open_private(os.path.join(path, CHECKPOINT_META), "w") as f:
            json.dump({"trial_id": self.trial_id, "iteration": self.iteration, "time_total_s": self.time_total}, f)

    def adopt_checkpoint(self, path: str | None) -> None:
        """Continue from `path` (after a mutate): counters resume where it was taken."""
        self.restore_checkpoint = self.last_checkpoint = path
        if path is not None:
            meta = read_checkpoint_meta(path)
            self.iteration = int(meta.get("iteration", self.iteration))
            self.time_total = float(meta.get("time_total_s", self.time_total))


def load_checkpoint(path: str | None) -> Any:
    """A checkpoint as the trial gave it: the dict, or the directory path."""
    if path is None:
        return None
    data = os.path.join(path, CHECKPOINT_DATA)
    if os.path.exists(data):
        return load_pickle_private(data)
    return path


def read_checkpoint_meta(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, CHECKPOINT_META)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# --- the public functions ------------------------------------------------------------------

_current: TrialSession | None = None


def _session(name: str) -> TrialSession:
    if _current is None:
        raise AsynctuneError(f"asynctune.{name}() can only be called inside a trial started by asynctune.run()")
    return _current


def report(metrics: Mapping[str, Any] | None = None, /, *, checkpoint: Any = None, **kwargs: Any) -> None:
    """Report one result of the running trial, optionally with a checkpoint.

    Example:
        >>> asynctune.report(loss=0.3, accuracy=0.91, checkpoint={"weights": w, "epoch": 3})
        >>> asynctune.report({"loss": 0.3}, checkpoint="/tmp/my_ckpt_dir")

    Args:
        metrics: A dict of results (or pass them as keyword arguments).
        checkpoint: A small picklable dict, or a directory the trial wrote (it is copied into
            the trial's directory). `get_checkpoint()` gives it back after a pause or restore.
    """
    if metrics is not None and not isinstance(metrics, Mapping):
        raise TypeError(f"report() takes a dict of metrics or keyword arguments, got {type(metrics).__name__}")
    merged = {**(metrics or {}), **kwargs}
    _session("report").report(merged, checkpoint)


def get_checkpoint() -> Any:
    """The checkpoint to resume from (a dict or a directory path), or None on a fresh start."""
    return load_checkpoint(_session("get_checkpoint").restore_checkpoint)


def get_trial_id() -> str:
    return _session("get_trial_id").trial_id


def get_trial_dir() -> str:
    """The trial's own directory, for files it wants kept (the working directory is not changed)."""
    return _session("get_trial_dir").trial_dir


def get_trial_resources() -> dict[str, Any]:
    """Where the trial was placed (Placement.as_dict()): {"host", "cpu", "gpu", "gpus": [{"index",
    "uuid", "fraction"}, ...], "gpu_memory_mb", "cuda_visible_devices"}; see docs/resources.md."""
    return dict(_session("get_trial_resources").request.placement)
