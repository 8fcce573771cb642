"""`asynctune.run()`: check every argument, then drive one experiment on an event loop."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cloudpickle

from .algorithms.base import Scheduler, Searcher, check_metric_mode
from .algorithms.basic import BasicVariantSearch
from .algorithms.fifo import FIFOScheduler
from .analysis import ExperimentAnalysis
from .controller import Controller, ExperimentSpec
from .executors.base import Executor
from .executors.local import LocalExecutor
from .monitor import monitor_interval
from .reporting.callback import Callback, CallbackList
from .reporting.console import ConsoleReporter
from .reporting.decisions import DecisionLog
from .reporting.tensorboard import TensorBoardLogger, tensorboardx_available
from .resources import Resources, ResourcesSpec
from .recovery import ResumeState, load_resume_state, restore_searcher, save_run_spec
from .space import Space
from .stopper import Stopper, make_stopper
from .storage import RUN_SPEC_FILE, prepare_experiment_dir
from .trainable import Trainable, trainable_name

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_PATH = "~/asynctune_results"


def run(
    trainable: Callable[[dict[str, Any]], Any] | type[Trainable],
    *,
    config: Mapping[str, Any] | None = None,
    num_samples: int = 1,
    metric: str | None = None,
    mode: str | None = None,
    stop: Mapping[str, float] | Callable[[str, dict[str, Any]], bool] | Stopper | None = None,
    search_alg: Searcher | None = None,
    scheduler: Scheduler | None = None,
    executor: Executor | None = None,
    resources_per_trial: ResourcesSpec = None,
    max_concurrent_trials: int | None = None,
    time_budget_s: float | None = None,
    storage_path: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    verbose: int = 2,
    callbacks: Sequence[Callback] = (),
    max_failures: int = 0,
    fail_fast: bool = False,
    checkpoint_frequency: int = 0,
    checkpoint_at_end: bool = False,
    keep_checkpoints_num: int | None = None,
    resume: bool = False,
    monitor: bool | float = False,
    memory_limit_mb: float | None = None,
    tensorboard: bool | None = None,
) -> ExperimentAnalysis:
    """Run an experiment: sample configs, train each in a worker, and return the analysis.

    Example:
        >>> def train(config):
        ...     for step in range(10):
        ...         asynctune.report(loss=(config["x"] - 3) ** 2 / (step + 1))
        >>> analysis = asynctune.run(train, config={"x": asynctune.uniform(0, 10)},
        ...                          num_samples=20, metric="loss", mode="min")
        >>> analysis.best_config

    Args:
        trainable: A function `train(config)` that calls `asynctune.report(...)`, or a
            `Trainable` subclass.
        config: The search space: a dict of constants and domains (uniform, choice, ...).
        num_samples: Trials to run; with grid_search, how often the whole grid is repeated.
            -1 runs until the searcher finishes or `time_budget_s` is spent.
        metric, mode: The result key to optimise and "min" or "max"; used by the searcher,
            the scheduler and the analysis unless they were given their own.
        stop: When a trial stops: a dict of thresholds ({"training_iteration": 10}), a
            callable(trial_id, result) -> bool, or a Stopper.
        search_alg: Proposes configs (default: random and grid search, seeded by `seed`).
        scheduler: Decides on running trials (default: FIFO, never stops one early).
        executor: Where trials run (default: worker processes on this machine).
        resources_per_trial: {"cpu": 1, "gpu": 0.5, "gpu_memory_mb": ...}, or a callable
            config -> that dict. Default one CPU.
        max_concurrent_trials: At most this many trials at once (default: as many as fit).
        time_budget_s: Stop the experiment after this many seconds.
        storage_path: Where experiment directories go (default ~/asynctune_results).
        name: The experiment's directory name (default: trainable name and time).
        seed: Makes the sampled configs reproducible.
        verbose: 0 silent, 1 final table and errors, 2 live table.
        callbacks: Extra `Callback`s (loggers) called as the experiment runs.
        max_failures: Retries of a failed trial, from its last checkpoint (-1: no limit).
        fail_fast: End the whole experiment at the first trial that fails for good.
        checkpoint_frequency: For `Trainable`s, checkpoint every this many steps (0: never).
        checkpoint_at_end: For `Trainable`s, checkpoint when the trial ends.
        keep_checkpoints_num: Keep only this many latest checkpoints per trial (default all).
        resume: If the experiment `storage_path/name` exists, continue it (see `resume()`)
            instead of starting anew; needs `name`.
        monitor: Sample each trial's CPU and memory (its whole process tree) and the GPUs'
            memory and utilization into <trial dir>/monitor.jsonl: True every 5 s, or a number
            of seconds. See docs/resources.md.
        memory_limit_mb: End a trial as ERROR when its process tree holds more resident memory
            than this ("trial X used N MB > memory_limit_mb=M"); turns the monitor on.
        tensorboard: Write TensorBoard event files (scalars and the HParams comparison) into
            the experiment directory; default: when tensorboardX is installed.

    Returns:
        An `ExperimentAnalysis` of the finished experiment.

    Raises:
        ValueError, SearchSpaceError: for bad arguments, before any trial starts.
        TrialFailed: with fail_fast, for the first trial that failed.
    """
    if resume:
        if not name:
            raise ValueError("run: resume=True needs name= to find the experiment to continue")
        existing = os.path.join(os.path.abspath(os.path.expanduser(storage_path or DEFAULT_STORAGE_PATH)), name)
        if os.path.exists(os.path.join(existing, RUN_SPEC_FILE)):
            return globals()["resume"](existing, verbose=verbose)
    return _run_on_loop(run_async(
        trainable, config=config, num_samples=num_samples, metric=metric, mode=mode, stop=stop,
        search_alg=search_alg, scheduler=scheduler, executor=executor, resources_per_trial=resources_per_trial,
        max_concurrent_trials=max_concurrent_trials, time_budget_s=time_budget_s, storage_path=storage_path,
        name=name, seed=seed, verbose=verbose, callbacks=callbacks, max_failures=max_failures,
        fail_fast=fail_fast, checkpoint_frequency=checkpoint_frequency, checkpoint_at_end=checkpoint_at_end,
        keep_checkpoints_num=keep_checkpoints_num, monitor=monitor, memory_limit_mb=memory_limit_mb,
        tensorboard=tensorboard,
    ))


async def run_async(trainable: Any, **kwargs: Any) -> ExperimentAnalysis:
    """`run()` as a coroutine, for programs that already run an event loop."""
    return await _drive(build_controller(trainable, **kwargs))


def resume(experiment_dir: str, *, executor: Executor | None = None, callbacks: Sequence[Callback] | None = None,
           verbose: int | None = None, time_budget_s: float | None = None) -> ExperimentAnalysis:
    """Continue an experiment whose driver stopped (killed, Ctrl-C, SIGTERM, a lost machine).

    Finished trials stay finished; running and paused trials restart from their newest
    checkpoint; the searcher's state is restored and the scheduler's rebuilt; no reported
    result is lost or counted twice. Resuming a finished experiment changes nothing.

    Example:
        >>> asynctune.resume("~/asynctune_results/train_mlp_2026-11-26_07-00-00")

    Args:
        experiment_dir: The experiment's directory.
        executor, callbacks: Replace those of the first run (needed when they could not be
            pickled, e.g. an SSH executor holding open connections).
        verbose, time_budget_s: Replace those of the first run.
    """
    state = load_resume_state(experiment_dir)
    if state.status == "FINISHED":
        logger.warning("%s already finished; there is nothing to resume", state.experiment_dir)
        if (verbose if verbose is not None else 1):
            print(f"asynctune: {state.experiment_dir} already finished; there is nothing to resume")
        return ExperimentAnalysis(state.experiment_dir)
    kwargs = dict(state.run_kwargs)
    for key, value in (("executor", executor), ("callbacks", callbacks), ("verbose", verbose),
                       ("time_budget_s", time_budget_s)):
        if value is not None:
            kwargs[key] = value
    kwargs["storage_path"], kwargs["name"] = os.path.split(state.experiment_dir)
    return _run_on_loop(_drive(build_controller(state.trainable, **kwargs, _resume=state)))


async def _drive(controller: Controller) -> ExperimentAnalysis:
    """Run the controller; SIGTERM ends it like Ctrl-C; say how to resume if interrupted."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    handled = _on_sigterm(loop, task)
    try:
        trials = await controller.run()
    except (asyncio.CancelledError, KeyboardInterrupt):
        if controller.status == "INTERRUPTED":
            print(f"\nasynctune: interrupted; state saved. Resume with:\n  asynctune resume {controller.spec.experiment_dir}",
                  file=sys.stderr)
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
    return ExperimentAnalysis(controller.spec.experiment_dir, metric=controller.spec.metric,
                              mode=controller.spec.mode, trials=trials)


def _on_sigterm(loop: asyncio.AbstractEventLoop, task: asyncio.Task | None) -> bool:
    if task is None or threading.current_thread() is not threading.main_thread():
        return False
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def build_controller(
    trainable: Any, *, config: Mapping[str, Any] | None = None, num_samples: int = 1, metric: str | None = None,
    mode: str | None = None, stop: Any = None, search_alg: Searcher | None = None,
    scheduler: Scheduler | None = None, executor: Executor | None = None, resources_per_trial: ResourcesSpec = None,
    max_concurrent_trials: int | None = None, time_budget_s: float | None = None, storage_path: str | None = None,
    name: str | None = None, seed: int | None = None, verbose: int = 2, callbacks: Sequence[Callback] = (),
    max_failures: int = 0, fail_fast: bool = False, checkpoint_frequency: int = 0,
    checkpoint_at_end: bool = False, keep_checkpoints_num: int | None = None, _resume: ResumeState | None = None,
    monitor: bool | float = False, memory_limit_mb: float | None = None, tensorboard: bool | None = None,
) -> Controller:
    """Check every argument of run() and build the controller; nothing runs yet."""
    run_kwargs = dict(
        config=config, num_samples=num_samples, metric=metric, mode=mode, stop=stop, search_alg=search_alg,
        scheduler=scheduler, executor=executor, resources_per_trial=resources_per_trial,
        max_concurrent_trials=max_concurrent_trials, time_budget_s=time_budget_s, verbose=verbose,
        callbacks=callbacks, max_failures=max_failures, fail_fast=fail_fast, seed=seed,
        checkpoint_frequency=checkpoint_frequency, checkpoint_at_end=checkpoint_at_end,
        keep_checkpoints_num=keep_checkpoints_num, monitor=monitor, memory_limit_mb=memory_limit_mb,
        tensorboard=tensorboard,
    )
    spec_blob = _snapshot(run_kwargs) if _resume is None else None  # fresh objects, before any use
    _check_trainable(trainable)
    check_metric_mode("run", metric, mode)
    if (metric is None) != (mode is None):
        raise ValueError(f"run: pass both metric= and mode= or neither, got {metric=}, {mode=}")
    _check_int("num_samples", num_samples, minimum=-1)
    if num_samples == 0:
        raise ValueError("run: num_samples must be >= 1, or -1 for no limit, got num_samples=0")
    if num_samples == -1 and time_budget_s is None and stop is None:
        logger.info("num_samples=-1 without time_budget_s: the searcher decides when to finish")
    if max_concurrent_trials is not None:
        _check_int("max_concurrent_trials", max_concurrent_trials, minimum=1)
    if time_budget_s is not None and not (isinstance(time_budget_s, (int, float)) and time_budget_s > 0):
        raise ValueError(f"run: time_budget_s must be a positive number of seconds, got {time_budget_s=}")
    _check_int("max_failures", max_failures, minimum=-1)
    _check_int("checkpoint_frequency", checkpoint_frequency, minimum=0)
    if keep_checkpoints_num is not None:
        _check_int("keep_checkpoints_num", keep_checkpoints_num, minimum=1)
    if verbose not in (0, 1, 2, 3):
        raise ValueError(f"run: verbose must be 0, 1 or 2, got {verbose=}")
    if not callable(resources_per_trial):
        Resources.parse(resources_per_trial)
    if seed is not None:
        _check_int("seed", seed, minimum=0)
    monitor_interval_s = monitor_interval(monitor, memory_limit_mb)

    space = Space(config)
    searcher = search_alg if search_alg is not None else BasicVariantSearch(seed=seed)
    if not isinstance(searcher, Searcher):
        raise ValueError(f"run: search_alg must be an asynctune Searcher, got {searcher!r}")
    searcher.set_search_properties(metric, mode, space, seed=seed)
    if _resume is not None:
        restore_searcher(searcher, _resume.experiment_dir)
    scheduler = scheduler if scheduler is not None else FIFOScheduler()
    if not isinstance(scheduler, Scheduler):
        raise ValueError(f"run: scheduler must be an asynctune Scheduler, got {scheduler!r}")
    scheduler.set_search_properties(metric, mode)
    scheduler.validate()
    stopper = make_stopper(stop, metric=metric, mode=mode)
    if executor is None:
        executor = LocalExecutor()
    elif not isinstance(executor, Executor):
        raise ValueError(f"run: executor must be an asynctune Executor, got {executor!r}")

    blob = _pickle_trainable(trainable)
    label = trainable_name(trainable)
    if name is None:
        name = _fresh_name(storage_path or DEFAULT_STORAGE_PATH, f"{label}_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"run: name must be a plain directory name, got {name=}")
    experiment_dir = prepare_experiment_dir(storage_path or DEFAULT_STORAGE_PATH, name)
    if _resume is None:
        if os.path.exists(os.path.join(experiment_dir, RUN_SPEC_FILE)):
            raise ValueError(f"run: {experiment_dir} already holds an experiment; pass resume=True to continue "
                             "it, or another name=")
        save_run_spec(experiment_dir, run_kwargs, blob, spec_blob)

    spec = ExperimentSpec(
        name=name, experiment_dir=experiment_dir, metric=metric, mode=mode, num_samples=num_samples,
        max_concurrent_trials=max_concurrent_trials, time_budget_s=time_budget_s, max_failures=max_failures,
        fail_fast=fail_fast, checkpoint_frequency=checkpoint_frequency, checkpoint_at_end=checkpoint_at_end,
        keep_checkpoints_num=keep_checkpoints_num, seed=seed, trainable_name=label, resources=resources_per_trial,
        monitor_interval_s=monitor_interval_s, memory_limit_mb=memory_limit_mb,
    )
    reporters: list[Callback] = [DecisionLog()]
    if verbose:
        reporters.append(ConsoleReporter(metric=metric, mode=mode, space=space, verbose=verbose,
                                         time_budget_s=time_budget_s, num_samples=num_samples))
    if tensorboard or (tensorboard is None and tensorboardx_available()):
        reporters.append(TensorBoardLogger(metric=metric, space=space))
    return Controller(
        spec=spec, trainable_blob=blob, trainable_key=hashlib.sha1(blob).hexdigest(), space=space,
        searcher=searcher, scheduler=scheduler, executor=executor, stopper=stopper,
        callbacks=CallbackList([*reporters, *callbacks]),
        trials=_resume.trials if _resume else (), time_used_s=_resume.time_used_s if _resume else 0.0,
    )


def _fresh_name(storage_path: str, base: str) -> str:
    """A default name that no experiment in storage_path has yet (runs may start in the same second)."""
    root = os.path.abspath(os.path.expanduser(storage_path))
    name, counter = base, 1
    while os.path.exists(os.path.join(root, name)):
        counter += 1
        name = f"{base}_{counter}"
    return name


def _snapshot(run_kwargs: dict[str, Any]) -> bytes | None:
    try:
        return cloudpickle.dumps(run_kwargs)
    except Exception:
        return None


def _check_trainable(trainable: Any) -> None:
    if isinstance(trainable, type):
        if not issubclass(trainable, Trainable):
            raise ValueError(f"run: a class trainable must subclass asynctune.Trainable, got {trainable.__name__}")
        if trainable.step is Trainable.step:
            raise ValueError(f"run: {trainable.__name__} must implement step()")
    elif not callable(trainable):
        raise ValueError(f"run: trainable must be a function train(config) or a Trainable subclass, got {trainable!r}")


def _pickle_trainable(trainable: Any) -> bytes:
    try:
        return cloudpickle.dumps(trainable)
    except Exception as exc:
        raise ValueError(
            f"run: the trainable {trainable_name(trainable)!r} cannot be pickled to send it to workers: "
            f"{type(exc).__name__}: {exc}. Create unpicklable objects (locks, open files, clients) inside it."
        ) from exc


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"run: {name} must be an integer >= {minimum}, got {name}={value!r}")


def _run_on_loop(coro: Any) -> Any:
    """Run on a fresh event loop (uvloop when installed); inside a running loop (Jupyter),
    on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(coro)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = _run(coro)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="asynctune-run")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    uvloop.install()  # pragma: no cover - Python 3.10
    return asyncio.run(coro)
