"""The class API for trials, and how the worker drives both trial APIs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..store import checkpoints
from ..store.private_files import make_tree_private
from .session import (
    MutateTrial, PauseTrial, StopTrial, TrialSession, load_checkpoint, write_checkpoint_data,
)


class Trainable:
    """A trial as a class: the framework calls `step()` and decides between steps.

    Example:
        >>> class Counter(Trainable):
        ...     def setup(self, config):
        ...         self.count = 0
        ...     def step(self):
        ...         self.count += self.config["increment"]
        ...         return {"count": self.count}
        ...     def save_checkpoint(self, checkpoint_dir):
        ...         return {"count": self.count}
        ...     def load_checkpoint(self, checkpoint):
        ...         self.count = checkpoint["count"]

    Override `setup`, `step`, and for pausing, PBT and retries `save_checkpoint` and
    `load_checkpoint`. `save_checkpoint(dir)` writes files into `dir` or returns a small dict;
    `load_checkpoint` then receives the directory path or that dict. `reset_config(new_config)`
    returning True lets PBT change the config without a new instance.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        self.iteration = 0
        self.setup(self.config)

    def setup(self, config: dict[str, Any]) -> None:
        """Build the model and data for `config`."""

    def step(self) -> dict[str, Any]:
        """Train one unit (an epoch, some batches) and return its metrics. With
        `"should_checkpoint": True` among them, this step is checkpointed (besides run()'s
        `checkpoint_frequency`), e.g. on a new best."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        """Write the state into `checkpoint_dir`, or return it as a small dict."""
        return None

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        """Restore what `save_checkpoint` saved (the dict it returned, or the directory)."""

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Switch to `new_config` in place; return True if done (PBT then reuses the instance)."""
        return False

    def cleanup(self) -> None:
        """Free resources when the trial ends."""

    @classmethod
    def can_checkpoint(cls) -> bool:
        return cls.save_checkpoint is not Trainable.save_checkpoint


def trainable_name(trainable: Any) -> str:
    return getattr(trainable, "__name__", type(trainable).__name__)


def run_function(fn: Callable[[dict[str, Any]], Any], session: TrialSession) -> str:
    """Run a function trainable; a mutate restarts it in place with the new config."""
    config = session.config
    while True:
        try:
            output = fn(config)
            if output is not None:  # named if it reported nothing: a return value is not a result
                session.returned = type(output).__name__
            return "finished"
        except MutateTrial as mutate:
            config = session.config = mutate.config
            session.adopt_checkpoint(mutate.checkpoint)


def run_class(cls: type[Trainable], session: TrialSession) -> tuple[str, str | None]:
    """Drive a Trainable: step, report, checkpoint when asked; returns (how, checkpoint)."""
    request = session.request
    trainable = _instantiate(cls, session.config, session)
    try:
        while True:
            result = checked_step(trainable)
            trainable.iteration = session.iteration + 1
            done = bool(result.get("done", False))
            checkpoint_dir = None
            frequency = request.checkpoint_frequency
            if cls.can_checkpoint() and (
                (frequency and trainable.iteration % frequency == 0) or (done and request.checkpoint_at_end)
                or result.get("should_checkpoint") is True  # the step asks for it (Ray's SHOULD_CHECKPOINT)
            ):
                checkpoint_dir = _save(trainable, session, next_iteration=True)
            try:
                session.report(result, checkpoint_dir=checkpoint_dir)
            except StopTrial as stop:
                if stop.late:  # the instance is a step past the last result: its state is not saved
                    _discard_unrecorded(checkpoint_dir)
                    return "stopped", None
                if request.checkpoint_at_end and checkpoint_dir is None and cls.can_checkpoint():
                    return "stopped", _save(trainable, session)
                return "stopped", None
            except PauseTrial as pause:
                if pause.late:  # resumed from the newest reported checkpoint; the step after it runs again
                    _discard_unrecorded(checkpoint_dir)
                    return "paused", None
                saved = checkpoint_dir or (_save(trainable, session) if cls.can_checkpoint() else None)
                return "paused", saved
            except MutateTrial as mutate:
                if mutate.late:
                    _discard_unrecorded(checkpoint_dir)
                session.config = mutate.config
                session.adopt_checkpoint(mutate.checkpoint)
                if trainable.reset_config(mutate.config) is True:
                    trainable.config = dict(mutate.config)
                else:
                    trainable.cleanup()
                    trainable = cls(mutate.config)
                if mutate.checkpoint is not None:
                    trainable.load_checkpoint(load_checkpoint(mutate.checkpoint))
                trainable.iteration = session.iteration
                continue
            if done:
                return "finished", checkpoint_dir
    finally:
        trainable.cleanup()


def _discard_unrecorded(checkpoint_dir: str | None) -> None:
    """A late decision (pipelined): this step's result is not sent, or the driver drops it, so
    the checkpoint saved with it would belong to no recorded result."""
    if checkpoint_dir is not None:
        checkpoints.discard(checkpoint_dir)


def _instantiate(cls: type[Trainable], config: dict[str, Any], session: TrialSession) -> Trainable:
    trainable = cls(config)
    if session.restore_checkpoint is not None:
        trainable.load_checkpoint(load_checkpoint(session.restore_checkpoint))
    trainable.iteration = session.iteration
    return trainable


def checked_step(trainable: Trainable) -> dict[str, Any]:
    """One step(): its result, which must be a dict."""
    result = trainable.step()
    if not isinstance(result, dict):
        raise TypeError(f"{type(trainable).__name__}.step() must return a dict, got {type(result).__name__}")
    return result


def save_into(trainable: Trainable, path: str) -> None:
    """save_checkpoint(path): a dict it returns is pickled and signed there, files it wrote are
    made private (they were written under the process's umask)."""
    data = trainable.save_checkpoint(path)
    if isinstance(data, dict):
        write_checkpoint_data(path, data)
    else:
        make_tree_private(path)


def _save(trainable: Trainable, session: TrialSession, *, next_iteration: bool = False) -> str:
    """Save into checkpoint_<iteration>/, numbered by the result it belongs to."""
    return session.save_checkpoint_with(lambda path: save_into(trainable, path), ahead=int(next_iteration))
