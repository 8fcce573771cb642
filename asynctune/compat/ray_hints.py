"""Hints for people coming from Ray Tune: Ray's names and keywords in plain asynctune say where
their counterparts are (asynctune.run's arguments, or Ray's API in asynctune.compat.ray), and a
trainable that still calls Ray's own functions is named before any trial starts."""

from __future__ import annotations

import dis
import functools
import inspect
import logging
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

logger = logging.getLogger("asynctune")

COMPAT = ("or keep Ray Tune's API by changing only the imports: import asynctune.compat.ray as ray; "
          "from asynctune.compat.ray import tune (docs/migrating_from_ray.md)")

# Ray Tune's top-level names that asynctune spells differently.
RAY_NAMES = {
    "Tuner": "asynctune.run(trainable, config=..., metric=..., mode=..., num_samples=...) returns an "
             "ExperimentAnalysis",
    "TuneConfig": "pass its fields (metric, mode, num_samples, search_alg, scheduler, ...) to asynctune.run",
    "RunConfig": "pass its fields (name, storage_path, stop, callbacks, verbose) to asynctune.run",
    "FailureConfig": "pass max_failures= and fail_fast= to asynctune.run",
    "CheckpointConfig": "pass keep_checkpoints_num=, checkpoint_frequency=, checkpoint_at_end= to asynctune.run",
    "ResultGrid": "asynctune.run returns an asynctune.ExperimentAnalysis",
    "Result": "asynctune.ExperimentAnalysis.get_best_result() returns the best result dict",
    "Checkpoint": "asynctune.report(..., checkpoint=a directory or a dict); asynctune.get_checkpoint() returns it",
    "with_resources": "pass resources_per_trial={'cpu': ..., 'gpu': ...} to asynctune.run",
    "with_parameters": "close over the objects in the trainable (functools.partial); they are pickled to each "
                       "worker once",
    "get_context": "asynctune.get_trial_id(), get_trial_dir(), get_trial_resources()",
    "LoggerCallback": "subclass asynctune.Callback",
    "PlacementGroupFactory": "pass resources_per_trial= to asynctune.run",
    "CLIReporter": "asynctune.run(verbose=0..3) chooses the live table",
    "init": "asynctune needs no cluster: LocalExecutor(cpus=N) limits the CPUs; asynctune.run(executor=...)",
    "shutdown": "asynctune needs no cluster; nothing to shut down",
    "tune": "asynctune's API is flat: asynctune.run, asynctune.uniform, asynctune.ASHAScheduler, ...",
    "train": "asynctune.report and asynctune.get_checkpoint",
    "schedulers": "the schedulers are top-level: asynctune.ASHAScheduler, asynctune.PopulationBasedTraining, ...",
    "search": "the searchers are top-level: asynctune.OptunaSearch, asynctune.HyperOptSearch, ...",
    "HyperBandForBOHB": "asynctune.HyperBandScheduler with asynctune.BOHBSearch",
    "TuneBOHB": "asynctune.BOHBSearch",
    "BasicVariantGenerator": "asynctune.BasicVariantSearch (the default)",
}

# Ray's keywords for Tuner / tune.run that asynctune.run() does not take, and what to pass instead.
RAY_KEYWORDS = {
    "param_space": "pass config= (the same dict of tune.uniform, choice, ...)",
    "tune_config": "pass its fields to run(): metric=, mode=, num_samples=, search_alg=, scheduler=, "
                   "max_concurrent_trials=, time_budget_s=",
    "run_config": "pass its fields to run(): name=, storage_path=, stop=, callbacks=, verbose=, max_failures=, "
                  "keep_checkpoints_num=",
    "failure_config": "pass max_failures= and fail_fast=",
    "checkpoint_config": "pass keep_checkpoints_num=, checkpoint_frequency=, checkpoint_at_end=",
    "reuse_actors": "leave it out: LocalExecutor reuses worker processes (LocalExecutor(reuse_workers=...))",
    "trial_name_creator": "leave it out: trials are named by their id",
    "trial_dirname_creator": "leave it out: trial directories are named by their id",
    "progress_reporter": "pass verbose=0..3",
    "local_dir": "pass storage_path=",
    "checkpoint_freq": "pass checkpoint_frequency=",
    "checkpoint_score_attr": "asynctune.run keeps the latest keep_checkpoints_num checkpoints",
    "sync_config": "leave it out: results stay on this machine's disk",
    "log_to_file": "leave it out: each trial's stdout.txt and stderr.txt are kept",
    "restore": "call asynctune.resume(experiment_dir)",
    "resume_errored": "call asynctune.resume(experiment_dir)",
    "stop_last_trials": "it is a scheduler argument, as in Ray: ASHAScheduler / HyperBandScheduler(stop_last_trials=False)",
}


def missing_name(name: str) -> AttributeError:
    """The AttributeError for `asynctune.<name>`: with a hint when it is a Ray Tune name."""
    hint = RAY_NAMES.get(name)
    if hint is None:
        return AttributeError(f"module 'asynctune' has no attribute {name!r}")
    return AttributeError(f"module 'asynctune' has no attribute {name!r} (a Ray Tune name): {hint}; {COMPAT}")


_F = TypeVar("_F", bound=Callable[..., Any])


def explain_ray_keywords(function: _F) -> _F:
    """Make `function` (run, run_async) answer Ray's keywords with what to pass instead."""
    accepted = set(inspect.signature(function).parameters)

    def check(kwargs: dict[str, Any]) -> None:
        ray_only = [name for name in kwargs if name in RAY_KEYWORDS and name not in accepted]
        if ray_only:
            how = "; ".join(f"{name}: {RAY_KEYWORDS[name]}" for name in ray_only)
            raise TypeError(f"{function.__name__}() got Ray Tune's keyword{'s' if len(ray_only) > 1 else ''} "
                            f"{', '.join(ray_only)}. {how}; {COMPAT}")

    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            check(kwargs)
            return await function(*args, **kwargs)
        return checked_async  # type: ignore[return-value]

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(kwargs)
        return function(*args, **kwargs)
    return checked  # type: ignore[return-value]


def warn_if_uses_ray(trainable: Any) -> list[str]:
    """Warn when the trainable's code refers to Ray's own modules or functions (a half-migrated
    script: Ray's report outside a Ray session does nothing, so the trial would report nothing).
    Returns the Ray names found."""
    found = sorted({name for name in _ray_references(trainable)})
    if found:
        logger.warning("%s refers to Ray's own %s; under asynctune those report nothing. Call asynctune.report / "
                       "asynctune.get_checkpoint, or import them from asynctune.compat.ray (from asynctune.compat.ray "
                       "import tune)", getattr(trainable, "__name__", trainable), ", ".join(found))
    return found


def _ray_references(trainable: Any) -> Iterator[str]:
    functions = [trainable] if not inspect.isclass(trainable) else [
        member for klass in trainable.__mro__ if klass.__module__ != "builtins"
        for member in vars(klass).values() if inspect.isfunction(member)]
    for function in functions:
        function = inspect.unwrap(function) if callable(function) else function
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        namespace = dict(getattr(function, "__globals__", {}))
        for name, cell in zip(code.co_freevars, function.__closure__ or ()):
            try:
                namespace[name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue
        for name in _names_used(code):
            where = _ray_origin(namespace.get(name))
            if where:
                yield where


def _names_used(code: types.CodeType) -> Iterator[str]:
    """The global and closure names the code loads (not attribute names: `tune.report` loads `tune`)."""
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF"):
            yield instruction.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names_used(const)


def _ray_origin(value: Any) -> str | None:
    """"ray.tune" for Ray's modules, "ray.train.report" for Ray's functions; else None."""
    if isinstance(value, types.ModuleType):
        name = value.__name__
        return name if name == "ray" or name.startswith("ray.") else None
    module = getattr(value, "__module__", None)
    if isinstance(module, str) and (module == "ray" or module.startswith("ray.")) and callable(value):
        return f"{module}.{getattr(value, '__qualname__', getattr(value, '__name__', '?'))}"
    return None
