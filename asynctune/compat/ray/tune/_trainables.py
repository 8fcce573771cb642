"""Ray's trainable helpers: `tune.Trainable`, `tune.with_resources`, `tune.with_parameters`,
`PlacementGroupFactory`. Resources ride on the trainable as an attribute that `Tuner` reads."""

from __future__ import annotations

import functools
import inspect
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import asynctune as _at
from asynctune.store.names import CHECKPOINT_PREFIX
from asynctune.worker.session import load_checkpoint, read_checkpoint_meta, write_checkpoint_meta
from asynctune.worker.trainable import checked_step, save_into

from ._placement import PlacementGroupFactory
from ._session import Checkpoint, with_flat_keys
from .result import DEFAULT_METRIC

RESOURCES_ATTR = "_asynctune_ray_resources"


class Trainable(_at.Trainable):
    """Ray's class API: override `setup(config)`, `step()`, `save_checkpoint(checkpoint_dir)`,
    `load_checkpoint(checkpoint)`, `reset_config(new_config)` and `cleanup()`, as in Ray.

    Example:
        >>> class Counter(tune.Trainable):
        ...     def setup(self, config):
        ...         self.count = 0
        ...     def step(self):
        ...         self.count += self.config["increment"]
        ...         return {"count": self.count, "done": self.count >= 10}

    `save_checkpoint` writes into the directory or returns a dict; `load_checkpoint` then gets
    the directory path or that dict, as in Ray.

    Outside a run, as in Ray, an instance trains and checkpoints by itself:
        >>> model = Counter(config={"increment": 2})
        >>> model.train()["count"], model.training_iteration
        (2, 1)
        >>> later = Counter(config=best.config)
        >>> later.restore(best.checkpoint)  # a tune.Checkpoint or a directory
        >>> later.stop()
    """

    def __init__(self, config: dict[str, Any] | None = None, logger_creator: Any = None, storage: Any = None) -> None:
        super().__init__(config)

    def train(self) -> dict[str, Any]:
        """One `step()`, counted: its result with `training_iteration` and `done` added."""
        result = checked_step(self)
        self.iteration += 1
        return {**result, "training_iteration": self.iteration, "done": bool(result.get("done", False))}

    def save(self, checkpoint_dir: str | None = None) -> Checkpoint:
        """Save with `save_checkpoint` into `checkpoint_dir` (default: a new temporary directory)."""
        path = checkpoint_dir or tempfile.mkdtemp(prefix=CHECKPOINT_PREFIX)
        os.makedirs(path, exist_ok=True)
        save_into(self, path)
        write_checkpoint_meta(path, iteration=self.iteration, time_total_s=0.0)  # restore() resumes the count
        return Checkpoint(path)

    def restore(self, checkpoint: Checkpoint | str | os.PathLike[str]) -> None:
        """Load a checkpoint that `save()` or a trial of a run saved, with `load_checkpoint`."""
        path = checkpoint.path if isinstance(checkpoint, Checkpoint) else os.fspath(checkpoint)
        if not os.path.isdir(path):
            raise ValueError(f"{type(self).__name__}.restore: {path!r} is not a checkpoint directory")
        self.load_checkpoint(load_checkpoint(path))
        self.iteration = int(read_checkpoint_meta(path).get("iteration", self.iteration))

    def stop(self) -> None:
        """Release what the trainable holds (its `cleanup()`)."""
        self.cleanup()

    def get_config(self) -> dict[str, Any]:
        return self.config

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> Any:
        """Override to give each trial its resources from its config (a dict or a
        PlacementGroupFactory), as in Ray; `tune.with_resources` takes precedence."""
        return None

    @property
    def training_iteration(self) -> int:
        return self.iteration

    # Outside a run, as in Ray: trial id and name "default", and a temporary directory of its own.
    @property
    def trial_id(self) -> str:
        return _at.get_trial_id() if in_a_trial() else "default"

    @property
    def trial_name(self) -> str:
        return self.trial_id

    @property
    def logdir(self) -> str:
        if in_a_trial():
            return _at.get_trial_dir()
        if getattr(self, "_own_logdir", None) is None:
            self._own_logdir = tempfile.mkdtemp(prefix=f"{type(self).__name__}_")
        return self._own_logdir

    trial_dir = logdir


def in_a_trial() -> bool:
    try:
        _at.get_trial_id()
    except _at.AsynctuneError:  # asked outside a trial started by a run
        return False
    return True


def to_asynctune_resources(spec: Any) -> Any:
    """Ray's {"cpu": 2, "gpu": 0.5} / {"CPU": 2, "GPU": 1} / PlacementGroupFactory / callable
    as asynctune's resources_per_trial."""
    if spec is None:
        return None
    if callable(spec) and not isinstance(spec, PlacementGroupFactory):
        return lambda config: to_asynctune_resources(spec(config))
    if isinstance(spec, PlacementGroupFactory):
        spec = spec.required_resources
    if not isinstance(spec, Mapping):
        raise ValueError(f"tune.with_resources: resources must be a dict, a PlacementGroupFactory or a function of "
                         f"the config, got {spec!r}")
    resources = {}
    for key, value in spec.items():
        name = key.lower()
        if name in ("cpu", "gpu"):
            resources[name] = value
        elif name == "memory" or not value:
            continue  # memory is Ray's scheduling hint; asynctune measures it (run(memory_limit_mb=...))
        else:
            raise ValueError(f"tune.with_resources: asynctune places trials by CPUs and GPUs only, got {key!r}; "
                             "drop it, or see docs/resources.md for GPU memory")
    return resources


def with_resources(trainable: Any, resources: Any) -> Any:
    """Ray's `tune.with_resources(trainable, {"cpu": 2, "gpu": 1})`: the trainable, carrying the
    resources each of its trials needs (checked now)."""
    if not callable(resources):
        to_asynctune_resources(resources)
    return _carrying(trainable, {RESOURCES_ATTR: resources})


def with_parameters(trainable: Any, **parameters: Any) -> Any:
    """Ray's `tune.with_parameters(train, data=data)`: `train(config, data=data)` in every trial.

    The objects travel to each worker once with the trainable (pickled over its pipe); there is
    no object store. For a class, `setup(config, **parameters)` receives them.
    """
    if inspect.isclass(trainable):
        if not issubclass(trainable, _at.Trainable):
            raise ValueError(f"tune.with_parameters: {trainable.__name__} is no tune.Trainable subclass")

        def setup(self: Any, config: dict[str, Any]) -> None:
            trainable.setup(self, config, **parameters)

        return type(trainable.__name__, (trainable,), {"setup": setup, "__module__": trainable.__module__})
    if not callable(trainable):
        raise ValueError(f"tune.with_parameters: trainable must be a function or a Trainable class, got {trainable!r}")

    @functools.wraps(trainable)
    def with_params(config: dict[str, Any]) -> Any:
        return trainable(config, **parameters)

    return with_params


def report_returned(trainable: Any) -> Any:
    """A function trainable that also reports what it returns, as Ray does: a dict as a result,
    a number as {"_metric": number} (Ray's quick-start objective `return {"score": score}`)."""
    if trainable is None or inspect.isclass(trainable):
        return trainable

    @functools.wraps(trainable)  # keeps its name, the resources it carries, and __wrapped__ for the Ray-name check
    def reporting_returned(config: dict[str, Any]) -> None:
        output = trainable(config)
        if output is None:
            return
        if isinstance(output, Mapping):
            _at.report(with_flat_keys(output))
        elif isinstance(output, (int, float)) and not isinstance(output, bool):
            _at.report({DEFAULT_METRIC: output})
        else:
            raise TypeError(f"{getattr(trainable, '__name__', 'the trainable')} returned {type(output).__name__}; a "
                            "function trainable may return None, a dict of metrics or a number (reported as "
                            f"{DEFAULT_METRIC!r})")

    return reporting_returned


def flat_results(trainable: Any) -> Any:
    """A class trainable whose `step()` results also carry their nested values as `a/b` keys, as
    Ray flattens them (function trainables get this from tune.report)."""
    if not inspect.isclass(trainable):
        return trainable

    def step(self: Any) -> Any:
        result = trainable.step(self)
        return with_flat_keys(result) if isinstance(result, Mapping) else result  # else: the worker's clear error

    return type(trainable.__name__, (trainable,), {"step": step, "__module__": trainable.__module__})


def in_trial_directory(trainable: Any) -> Any:
    """The trainable, run in its trial's directory as Ray runs it (so Ray's tutorials'
    `torch.save(model, "./model.pth")` and `Checkpoint.from_directory("my_model")` stay per trial);
    the worker's directory is restored when the trial ends."""
    if trainable is None:
        return None
    if inspect.isclass(trainable):
        def setup(self: Any, config: dict[str, Any]) -> None:
            self._directory_before_trial = _enter_trial_directory()
            try:
                trainable.setup(self, config)
            except BaseException:
                os.chdir(self._directory_before_trial)
                raise

        def cleanup(self: Any) -> None:
            try:
                trainable.cleanup(self)
            finally:
                os.chdir(self._directory_before_trial)

        return type(trainable.__name__, (trainable,), {"setup": setup, "cleanup": cleanup,
                                                        "__module__": trainable.__module__})

    @functools.wraps(trainable)
    def in_its_directory(config: dict[str, Any]) -> Any:
        before = _enter_trial_directory()
        try:
            return trainable(config)
        finally:
            os.chdir(before)

    return in_its_directory


def _enter_trial_directory() -> str:
    before = os.getcwd()
    os.chdir(_at.get_trial_dir())
    return before


def changes_to_trial_directory(chdir_to_trial_dir: Any) -> bool:
    """Ray's rule: into the trial's directory unless RAY_CHDIR_TO_TRIAL_DIR=0 (or the deprecated
    TuneConfig(chdir_to_trial_dir=False))."""
    if chdir_to_trial_dir is False:
        return False
    return os.environ.get("RAY_CHDIR_TO_TRIAL_DIR", "1") != "0"


def resources_of(trainable: Any) -> Any:
    """What with_resources gave the trainable, else a class's own `default_resource_request`."""
    given = getattr(trainable, RESOURCES_ATTR, None)
    if given is not None or not (inspect.isclass(trainable) and issubclass(trainable, Trainable)):
        return given
    if trainable.default_resource_request.__func__ is Trainable.default_resource_request.__func__:
        return None
    return lambda config: trainable.default_resource_request(config) or {"cpu": 1}


def _carrying(trainable: Any, attributes: dict[str, Any]) -> Any:
    if inspect.isclass(trainable):
        return type(trainable.__name__, (trainable,), {**attributes, "__module__": trainable.__module__})
    if not callable(trainable):
        raise ValueError(f"expected a function or a Trainable class, got {trainable!r}")

    @functools.wraps(trainable)
    def carrying(config: dict[str, Any]) -> Any:
        return trainable(config)

    for key, value in attributes.items():
        setattr(carrying, key, value)
    return carrying


def check_trainable(trainable: Any) -> None:
    if isinstance(trainable, str):
        raise ValueError(f"Tuner: trainable {trainable!r} is a registered name; asynctune has no registry: pass the "
                         "function or Trainable class itself")
    if not callable(trainable):
        raise ValueError(f"Tuner: trainable must be a function or a Trainable class, got {trainable!r}")
    if not inspect.isclass(trainable) and not _takes_one_config(trainable):
        raise ValueError(f"Tuner: the function trainable {getattr(trainable, '__name__', trainable)!r} must take the "
                         "config as its one positional argument, as in Ray: def train(config): ... (pass other "
                         "objects with tune.with_parameters)")
    if hasattr(trainable, "fit") and hasattr(trainable, "scaling_config"):
        raise ValueError(f"Tuner: Ray Train trainers ({type(trainable).__name__}) are not supported; write the "
                         "training loop as a function trainable(config) that calls tune.report")


def _takes_one_config(function: Any) -> bool:
    """Ray's rule: the trainable can be called with the config alone (wrappers by their own signature)."""
    try:
        signature = inspect.signature(function, follow_wrapped=False)
    except (TypeError, ValueError):  # a builtin or C callable: let it run
        return True
    try:
        signature.bind({})
    except TypeError:
        return False
    return True
