"""`asynctune.run()`: check every argument, then drive one experiment on an event loop."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import inspect
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec

import cloudpickle

from .worker import pickling
from .algorithms.base import Scheduler, Searcher
from .algorithms.search.basic import BasicVariantSearch
from .algorithms.schedulers.fifo import FIFOScheduler
from .analysis.experiment import ExperimentAnalysis
from .controller.loop import Controller
from .algorithms.schedulers.pbt import PopulationBasedTraining
from .core.config_pickling import check_config_picklable
from .errors import NothingReported, StorageFull, TrialsFailed, is_disk_full, resume_command
from .executors.base import Executor
from .executors.local import LocalExecutor
from .controller.resource_monitor import monitor_interval
from .reporting.callback import Callback, CallbackList
from .reporting.console import ConsoleReporter
from .reporting.decisions import DecisionLog
from .reporting.tensorboard import TensorBoardLogger
from .reporting.tensorboard_choice import tensorboard_wanted
from .options import ExperimentSpec, RunOptions
from .core.resources import Resources, ResourcePool, ResourcesSpec, local_inventory
from .store.recovery import ResumeState, load_resume_state, reopen_errored, restore_searcher, save_run_spec
from .core.space import Space
from .core.stopper import Stopper, make_stopper
from .store.layout import check_name_free, prepare_experiment_dir, trial_ids
from .worker.trainable import Trainable, trainable_name
from .core.trial import Status
from .compat.ray_hints import explain_ray_keywords, warn_if_uses_ray
from .controller.replay import replay_searcher
from .store.lock import DriverLock, claim_fresh_name, lock_existing
from .store import names
from .store.recording_policy import policy_of

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_PATH = "~/asynctune_results"
_ERRORED = ("keep", "resume", "restart")  # resume(errored=...): what becomes of trials that failed for good


@explain_ray_keywords
def run(
    trainable: Callable[[dict[str, Any]], Any] | type[Trainable],
    *,
    config: Mapping[str, Any] | None = None,
    num_samples: int = 1,
    metric: str | Sequence[str] | None = None,
    mode: str | Sequence[str] | None = None,
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
    raise_on_failed_trial: bool | str = "all",
    stop_grace_s: float = 5.0,
    checkpoint_frequency: int = 0,
    checkpoint_at_end: bool = False,
    keep_checkpoints_num: int | None = None,
    resume: bool = False,
    monitor: bool | float = False,
    memory_limit_mb: float | None = None,
    tensorboard: bool | None = None,
    dashboard: bool = False,
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
            the scheduler and the analysis unless they were given their own. Several
            objectives: a list of keys and a list of as many modes (or one mode for all),
            e.g. metric=["error", "latency"], mode=["min", "min"]; the analysis then has a
            `pareto_front()`, and the searcher and scheduler must handle several metrics
            (see docs/multi_objective.md).
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
        seed: Makes the sampled configs reproducible, and the random draws of a scheduler given no
            seed of its own (ASHA's brackets, PBT's donors and explore).
        verbose: 0 silent, 1 final table and errors, 2 live table, 3 also a line per decision and
            per trial's end.
        callbacks: Extra `Callback`s (loggers) called as the experiment runs.
        max_failures: Retries of a failed trial, from its last checkpoint (-1: no limit).
        fail_fast: End the whole experiment at the first trial that fails for good.
        raise_on_failed_trial: When failed trials make run() raise `TrialsFailed` once the
            experiment ended: "all" (the default: every trial failed, so there is no result),
            "any" or True (one failed trial is enough, as Ray Tune's raise_on_failed_trial=True),
            "never" or False.
        stop_grace_s: How long a trial told to stop or pause (by the scheduler, a stopper or
            the end of the experiment) may take to return; then its worker's process tree gets
            SIGTERM, then SIGKILL (see the executor's kill_grace_s), its place is freed and the
            decision stands: stopped trials end TERMINATED, paused ones PAUSED at their last
            checkpoint (docs/faults.md).
        checkpoint_frequency: For `Trainable`s, checkpoint every this many steps (0: never).
        checkpoint_at_end: For `Trainable`s, checkpoint when the trial ends.
        keep_checkpoints_num: Keep only this many latest checkpoints per trial (default all).
        resume: If the experiment `storage_path/name` exists, continue it (see `resume()`)
            instead of starting anew; needs `name`. It runs the `trainable` passed here, not
            the one the first run saved (so a fix takes effect), and saves it for later resumes;
            likewise the `executor` passed here (other SSH hosts), else the first run's.
        monitor: Sample each trial's CPU and memory (its whole process tree) and the GPUs'
            memory and utilization into <trial dir>/monitor.jsonl: True every 5 s, or a number
            of seconds. See docs/resources.md.
        memory_limit_mb: End a trial as ERROR when its process tree holds more resident memory
            than this ("trial X used N MB > memory_limit_mb=M"); turns the monitor on.
        tensorboard: Write TensorBoard event files (scalars and the HParams comparison) into
            the experiment directory; default: when tensorboardX is installed, unless the
            executor batches its writes (a simulation: `SimulatedExecutor(recording=...)`).
        dashboard: Serve the live web dashboard (docs/dashboard.md) on 127.0.0.1 while the
            experiment runs, and print its URL; it shows the other experiments in
            storage_path too. Needs `pip install 'asynctune[dashboard]'`.

    Returns:
        An `ExperimentAnalysis` of the finished experiment.

    Raises:
        ValueError, SearchSpaceError: for bad arguments, before any trial starts; and when the
            first result lacks `metric` and no result so far had it (the experiment stops, what
            was reported is kept).
        TrialsFailed: when trials failed (see raise_on_failed_trial), after the experiment ended
            and was saved; its `analysis` holds what the trials reported.
        TrialFailed: with fail_fast, for the first trial that failed.
        NothingReported: when the trials returned and none reported a result (the trainable
            never called asynctune.report), after the experiment ended and was saved.
        KeyboardInterrupt: on Ctrl-C, after every trial was stopped, the state saved and the
            resume command printed; uncaught, it ends the program without a traceback.
    """
    prepared = _prepare(trainable, resume=resume, options=RunOptions(**_options_of(locals())))  # before any loop
    return prepared if isinstance(prepared, ExperimentAnalysis) else _run_on_loop(_drive(prepared))


def _options_of(arguments: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in arguments.items() if key not in ("trainable", "resume")}


_P = ParamSpec("_P")


def _parameters_of(source: Callable[_P, Any]) -> Callable[[Callable[..., Awaitable[ExperimentAnalysis]]],
                                                          Callable[_P, Awaitable[ExperimentAnalysis]]]:
    """Give a coroutine function `source`'s parameters, for type checkers, IDEs and help()."""
    def apply(target: Callable[..., Awaitable[ExperimentAnalysis]]) -> Callable[_P, Awaitable[ExperimentAnalysis]]:
        target.__signature__ = inspect.signature(source)  # type: ignore[attr-defined]
        return target
    return apply


@explain_ray_keywords
@_parameters_of(run)
async def run_async(trainable: Any, *, resume: bool = False, **options: Any) -> ExperimentAnalysis:
    """`run()` as a coroutine, for programs that already run an event loop; same parameters."""
    prepared = _prepare(trainable, resume=resume, options=RunOptions(**options))
    return prepared if isinstance(prepared, ExperimentAnalysis) else await _drive(prepared)


def _prepare(trainable: Any, *, resume: bool, options: RunOptions) -> Controller | ExperimentAnalysis:
    """Check everything and build the controller (no event loop needed): bad arguments raise
    here, from the caller's own call. An experiment resumed after it finished is its analysis."""
    if resume:
        if not options.name:
            raise ValueError("run: resume=True needs name= to find the experiment to continue")
        _check_name(options.name)  # before the path is used: "../x" must not reach outside storage_path
        storage_path = options.storage_path or DEFAULT_STORAGE_PATH
        existing = os.path.join(os.path.abspath(os.path.expanduser(storage_path)), options.name)
        if os.path.exists(names.run_spec_file(existing)) and trial_ids(existing):
            # The trainable passed here, not the one saved: the user may have fixed a bug in it;
            # the executor too when one is passed (a lab's hosts change: one is gone, one is new).
            return _prepare_resume(existing, verbose=options.verbose, trainable=trainable, executor=options.executor)
    return build_controller(trainable, options)


def resume(experiment_dir: str, *, executor: Executor | None = None, callbacks: Sequence[Callback] | None = None,
           verbose: int | None = None, time_budget_s: float | None = None, trust: bool = False,
           trainable: Any = None, errored: str = "keep") -> ExperimentAnalysis:
    """Continue an experiment whose driver stopped (killed, Ctrl-C, SIGTERM, a lost machine).

    Finished trials stay finished; running and paused trials restart from their newest
    checkpoint; the searcher's state is restored and the scheduler's rebuilt; no reported
    result is lost or counted twice. Resuming a finished experiment changes nothing. The
    trainable is the one saved in the experiment (to run a fixed one, call
    `run(fixed, name=..., resume=True)`). Raises `ExperimentLocked` at once, naming the holder,
    while another driver runs the experiment.

    Example:
        >>> asynctune.resume("~/asynctune_results/train_mlp_2026-11-26_07-00-00")

    Args:
        experiment_dir: The experiment's directory.
        executor, callbacks: Replace those of the first run (needed when they could not be
            pickled, e.g. an SSH executor holding open connections).
        verbose, time_budget_s: Replace those of the first run.
        trust: The directory was made elsewhere (another user or machine, an older asynctune)
            and you reviewed it: sign its pickles with your key first, as `asynctune trust DIR`
            does. Without it such a directory is refused (UntrustedFileError), since unpickling
            runs code; see docs/security.md.
        trainable: Run this one instead of the one saved (e.g. with a bug fixed); it is saved
            for later resumes.
        errored: What happens to trials that failed for good: "keep" them failed (default),
            "resume" them from their newest checkpoint, or "restart" them from the start; the
            last two rerun them in a finished experiment too.
    """
    if errored not in _ERRORED:
        raise ValueError(f"resume: errored must be one of {', '.join(map(repr, _ERRORED))}, got {errored=}")
    if trust:
        from .store.signing import trust_directory

        logger.warning("resume: trusting %s: its pickles are signed with your key", experiment_dir)
        trust_directory(experiment_dir)
    prepared = _prepare_resume(experiment_dir, executor=executor, callbacks=callbacks, verbose=verbose,
                               time_budget_s=time_budget_s, trainable=trainable, errored=errored)
    return prepared if isinstance(prepared, ExperimentAnalysis) else _run_on_loop(_drive(prepared))


def _prepare_resume(experiment_dir: str, *, executor: Executor | None = None,
                    callbacks: Sequence[Callback] | None = None, verbose: int | None = None,
                    time_budget_s: float | None = None, trainable: Any = None,
                    errored: str = "keep") -> Controller | ExperimentAnalysis:
    lock = lock_existing(experiment_dir)  # before anything is read or repaired: one driver at a time
    try:
        controller = _resume_locked(experiment_dir, executor=executor, callbacks=callbacks, verbose=verbose,
                                    time_budget_s=time_budget_s, trainable=trainable, errored=errored)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if isinstance(controller, Controller):
        controller.driver_lock = lock
    elif lock is not None:
        lock.release()
    return controller


def _resume_locked(experiment_dir: str, *, executor: Executor | None, callbacks: Sequence[Callback] | None,
                   verbose: int | None, time_budget_s: float | None,
                   trainable: Any, errored: str = "keep") -> Controller | ExperimentAnalysis:
    try:
        state = load_resume_state(experiment_dir)
    except OSError as exc:  # rewinding trials' results on a disk still full
        if not is_disk_full(exc) or isinstance(exc, StorageFull):
            raise
        path = os.fsdecode(exc.filename) if exc.filename else experiment_dir
        raise StorageFull(path, os.path.abspath(os.path.expanduser(experiment_dir))) from exc
    failed = errored != "keep" and any(t.status is Status.ERROR for t in state.trials)
    if state.status == "FINISHED" and not failed:
        logger.info("%s already finished; there is nothing to resume", state.experiment_dir)
        if (verbose if verbose is not None else 1):  # said once: the console line, not also a warning
            print(f"asynctune: {state.experiment_dir} already finished; there is nothing to resume")
        return ExperimentAnalysis(state.experiment_dir)
    # Every check before anything on disk changes (a restart moves the failed trials' checkpoints).
    if not policy_of(executor).resumable:  # its trials are in directories, with a journal
        raise ValueError(f"resume: {state.experiment_dir} was recorded in trial directories, which a "
                         "consolidated simulation does not read; pass SimulatedExecutor(..., recording='batched') "
                         "(or 'files') to resume it")
    budget = time_budget_s if time_budget_s is not None else state.run_kwargs.get("time_budget_s")
    if budget and state.time_used_s >= budget:  # its trials would start only to be ended at once
        more = math.ceil(state.time_used_s + budget)
        raise ValueError(
            f"resume: {state.experiment_dir} spent its time budget (time_budget_s={budget:g}; "
            f"{state.time_used_s:.1f} s used); pass a larger total time_budget_s to go on, e.g. {more} "
            f"(`{resume_command(state.experiment_dir)} --time-budget-s {more}`)")
    if failed:
        reopened = reopen_errored(state.trials, restart=errored == "restart")
        logger.info("%s: %d failed trial(s) run again (%s)", state.experiment_dir, len(reopened), errored)
    overrides = {key: value for key, value in (("executor", executor), ("callbacks", callbacks),
                                               ("verbose", verbose), ("time_budget_s", time_budget_s))
                 if value is not None}
    storage_path, name = os.path.split(state.experiment_dir)
    options = RunOptions.from_saved(state.run_kwargs, **overrides, storage_path=storage_path, name=name)
    if trainable is None:
        return build_controller(state.trainable, options, resume_state=state)
    controller = build_controller(trainable, options, resume_state=state)
    # What later resumes (`asynctune resume DIR`) run: the trainable this driver runs.
    save_run_spec(state.experiment_dir, state.run_kwargs, _pickle_trainable(trainable), _snapshot(state.run_kwargs))
    logger.info("%s: resuming with the trainable passed to run() (%s), not the one saved", state.experiment_dir,
                trainable_name(trainable))
    return controller


async def _drive(controller: Controller) -> ExperimentAnalysis:
    """Run the controller; SIGTERM ends it like Ctrl-C; say how to resume if interrupted; raise
    TrialsFailed when raise_on_failed_trial says so."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated: list[bool] = []
    handled = _on_sigterm(loop, task, terminated)
    stop_dashboard = _start_dashboard(controller) if controller.options.dashboard else None
    try:
        trials = await controller.run()
    except (asyncio.CancelledError, KeyboardInterrupt):
        if controller.status == "INTERRUPTED" and policy_of(controller.executor).consolidated:
            print(f"\nasynctune: interrupted; a consolidated simulation is rerun, not resumed "
                  f"({controller.spec.experiment_dir} keeps what it recorded)", file=sys.stderr)
        elif controller.status == "INTERRUPTED":
            print(f"\nasynctune: interrupted; state saved. Resume with:\n  {resume_command(controller.spec.experiment_dir)}",
                  file=sys.stderr)
        if terminated:
            raise _Terminated() from None
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
        if stop_dashboard is not None:
            stop_dashboard()
        if controller.driver_lock is not None:  # held from the start: the next driver may come
            controller.driver_lock.release()
    analysis = ExperimentAnalysis(controller.spec.experiment_dir, metric=controller.options.metric,
                                  mode=controller.options.mode, trials=trials, state=controller.state.saved)
    failed = [t for t in trials if t.status is Status.ERROR]
    policy = controller.options.failed_trials_raise()
    if failed and (policy == "any" or (policy == "all" and len(failed) == len(trials))):
        raise TrialsFailed(failed, len(trials), analysis)
    if trials and not any(t.num_results for t in trials) and any(t.status is Status.TERMINATED for t in trials) \
            and controller.stopping is None:
        raise NothingReported(len(trials), controller.foreign_reports, analysis, returned=controller.returned_instead)
    return analysis


def _start_dashboard(controller: Controller) -> Callable[[], None]:
    """The dashboard beside the run, in its own thread: this loop never waits on its file reads."""
    from .dashboard import start_beside

    url, stop = start_beside(os.path.dirname(controller.spec.experiment_dir), experiment=controller.spec.name)
    logger.info("dashboard at %s", url)
    if controller.options.verbose:
        print(f"asynctune: dashboard at {url}", file=sys.stderr)
    return stop


class _Terminated(Exception):
    """SIGTERM ended the run; state is saved. `_run_on_loop` turns it into a quiet exit."""


def _on_sigterm(loop: asyncio.AbstractEventLoop, task: asyncio.Task | None, terminated: list[bool]) -> bool:
    if task is None or threading.current_thread() is not threading.main_thread():
        return False

    def on_sigterm() -> None:
        terminated.append(True)
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def build_controller(trainable: Any, options: RunOptions, *, resume_state: ResumeState | None = None) -> Controller:
    """Check every option of run() and build the controller; nothing runs yet."""
    saved = options.as_saved()
    spec_blob = _snapshot(saved) if resume_state is None else None  # fresh objects, before any use
    _check_trainable(trainable)
    if resume_state is None:
        warn_if_uses_ray(trainable)
    options.check()
    monitor_interval_s = monitor_interval(options.monitor, options.memory_limit_mb)
    config, metric, mode, seed = options.config, options.metric, options.mode, options.seed

    scheduler = options.scheduler if options.scheduler is not None else FIFOScheduler()
    if not isinstance(scheduler, Scheduler):
        raise ValueError(f"run: scheduler must be an asynctune Scheduler, got {scheduler!r}")
    space = Space(scheduler.complete_search_space(config) if isinstance(config, Mapping) else config)
    searcher = options.search_alg if options.search_alg is not None else BasicVariantSearch(seed=seed)
    if not isinstance(searcher, Searcher):
        raise ValueError(f"run: search_alg must be an asynctune Searcher, got {searcher!r}")
    searcher.set_search_properties(metric, mode, space, seed=seed)
    scheduler.set_search_properties(metric, mode)
    scheduler.set_seed(seed)
    scheduler.validate()
    if isinstance(scheduler, PopulationBasedTraining) and searcher.max_trials(options.num_samples) is None:
        raise ValueError(f"run: PopulationBasedTraining needs a population size: num_samples={options.num_samples} "
                         "runs trials without end; pass num_samples=<population size>")
    stopper = make_stopper(options.stop, metric=metric, mode=mode)
    executor = options.executor
    if executor is None:
        executor = LocalExecutor()
    elif not isinstance(executor, Executor):
        raise ValueError(f"run: executor must be an asynctune Executor, got {executor!r}")

    _check_resources_fit_here(executor, options.resources_per_trial)
    check_config_picklable(config)
    batched = policy_of(executor).batched  # a simulation: no file written per result unless asked
    tensorboard = tensorboard_wanted(options.tensorboard, batched=batched)
    blob = _pickle_trainable(trainable)
    label = trainable_name(trainable)
    name, storage_path = options.name, options.storage_path
    if name is None:
        name = claim_fresh_name(storage_path or DEFAULT_STORAGE_PATH,
                                f"{label}_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}")
    _check_name(name)
    experiment_dir = prepare_experiment_dir(storage_path or DEFAULT_STORAGE_PATH, name)
    lock = None
    if resume_state is None:
        lock = DriverLock.acquire(experiment_dir)  # a run driving this name now is never touched
        try:
            check_name_free(experiment_dir)  # a directory whose run created no trial is free again
            save_run_spec(experiment_dir, saved, blob, spec_blob)
        except BaseException:
            lock.release()
            raise
    try:
        searcher.set_experiment_dir(experiment_dir)
        if resume_state is not None and (searcher.replayable or not restore_searcher(searcher, experiment_dir)):
            # Rebuilt from the trials: it could not be saved, or its state is saved only at the
            # end (a killed driver's would be behind the journal) and replaying it is exact.
            searcher.max_trials(options.num_samples)  # as the run tells it first: how many configs it draws
            replay_searcher(searcher, resume_state.trials)
    except BaseException:
        if lock is not None:
            lock.release()
        raise

    spec = ExperimentSpec(options=options, name=name, experiment_dir=experiment_dir, trainable_name=label,
                          monitor_interval_s=monitor_interval_s)
    reporters: list[Callback] = [DecisionLog(scheduler=scheduler, flush_each=not batched)]  # knows max_t
    if options.verbose:
        reporters.append(ConsoleReporter(metric=metric, mode=mode, space=space, verbose=options.verbose,
                                         time_budget_s=options.time_budget_s, num_samples=options.num_samples, scheduler=scheduler))
    if tensorboard:
        reporters.append(TensorBoardLogger(metric=metric, space=space))
    controller = Controller(
        spec=spec, trainable_blob=blob, trainable_key=hashlib.sha1(blob).hexdigest(), space=space,
        searcher=searcher, scheduler=scheduler, executor=executor, stopper=stopper,
        callbacks=CallbackList([*reporters, *options.callbacks]),
        trials=resume_state.trials if resume_state else (),
        time_used_s=resume_state.time_used_s if resume_state else 0.0,
    )
    controller.driver_lock = lock
    return controller


def _check_resources_fit_here(executor: Executor, spec: ResourcesSpec) -> None:
    """A fixed request this machine can never hold (a GPU where there is none) is refused now,
    before the experiment directory exists, in one message with the reason and the fix."""
    if isinstance(executor, LocalExecutor) and spec is not None and not callable(spec):
        ResourcePool([local_inventory(cpus=executor.cpus)]).check(Resources.parse(spec))


def _check_name(name: str) -> None:
    """An experiment name is one directory inside storage_path, for new runs and resume=True."""
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        raise ValueError(f"run: name must be a plain directory name, got {name=}")


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
        return pickling.dumps(trainable)  # keeps the user's file names for tracebacks
    except Exception as exc:
        raise ValueError(
            f"run: the trainable {trainable_name(trainable)!r} cannot be pickled to send it to workers: "
            f"{type(exc).__name__}: {exc}. Create unpicklable objects (locks, open files, clients) inside it."
        ) from exc


def _run_on_loop(coro: Any) -> Any:
    """Run on a fresh event loop (uvloop when installed); inside a running loop (Jupyter),
    on a fresh loop in a helper thread. What the experiment raises comes out alone, with no
    asyncio machinery chained before it."""
    if not _loop_running():
        try:
            return _run(coro)
        except KeyboardInterrupt as interrupt:  # Ctrl-C: the resume hint is printed; no traceback
            raise _quiet_if_uncaught(interrupt) from None
        except StorageFull as full:  # its message says what happened and how to resume
            raise _quiet_if_uncaught(full, f"asynctune: {full}") from None
        except _Terminated:  # SIGTERM: the hint is printed; end as a terminated process would
            raise SystemExit(128 + signal.SIGTERM) from None
    return _run_in_thread(coro)


def _run_in_thread(coro: Any) -> Any:
    """Run `coro` on a fresh loop in a helper thread while this thread waits. A KeyboardInterrupt
    here (a Jupyter kernel interrupt) cancels the experiment as Ctrl-C would, waits for it to
    save its state and end its workers, then comes out: nothing runs on behind the user's back."""
    outcome: dict[str, Any] = {}
    started = threading.Event()
    handle: dict[str, Any] = {}

    async def tracked() -> Any:
        handle["loop"], handle["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await coro

    def target() -> None:
        try:
            outcome["value"] = _run(tracked())
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=target, name="asynctune-run")
    thread.start()
    interrupted = False
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt:
            interrupted = True
            started.wait()
            if "task" in handle and not handle["loop"].is_closed():
                try:
                    handle["loop"].call_soon_threadsafe(handle["task"].cancel)
                except RuntimeError:  # the loop closed meanwhile: the run has ended anyway
                    pass
    if interrupted and "value" not in outcome:
        raise KeyboardInterrupt
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _quiet_if_uncaught(exc: BaseException, message: str = "") -> BaseException:
    """Should `exc` end the program, end it without a traceback, printing `message` alone: what
    matters (how to resume) is said, and a traceback would bury it. A KeyboardInterrupt still
    ends the program as Python's own Ctrl-C does (by SIGINT); anything else exits with status 1.
    Programs that catch `exc` see it as usual; other exceptions keep the usual hook."""
    exc._asynctune_quiet = message  # type: ignore[attr-defined]
    if not getattr(sys.excepthook, "_asynctune_quiet", False):
        previous = sys.excepthook

        def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            quiet = getattr(value, "_asynctune_quiet", None)
            if quiet is None:
                previous(kind, value, tb)
            elif quiet:
                print(quiet, file=sys.stderr)

        excepthook._asynctune_quiet = True  # type: ignore[attr-defined]
        sys.excepthook = excepthook
    return exc


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
