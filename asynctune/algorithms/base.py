"""The narrow waist on the algorithm side: Searcher (which configs) and Scheduler (what to do
with running trials), as in the Tune paper.

Two forms of scheduler, one built on the other:

* `Scheduler` is the callback interface the controller drives: `on_trial_add`,
  `on_trial_result -> CONTINUE | PAUSE | STOP | Mutate`, `on_trial_complete`, `on_trial_error`,
  `choose_trial_to_run`. It may act on *other* trials through `self.control`
  (stop, pause, resume with a new config or checkpoint).
* `CoroutineScheduler` is built on it for algorithms that are a sequence of waits ("wait until
  this rung is full, then promote the best third"). Its `run()` is a coroutine that iterates
  over `self.events()` and calls `self.stop / pause / resume / mutate`. Each result is held
  until every event stream of the scheduler has taken it and is waiting for the next one;
  whatever the coroutine decided for that trial by then is the decision. So a decision on
  result k is in force before step k+1, exactly as with callbacks, and runs are reproducible.
"""

from __future__ import annotations

import abc
import asyncio
import inspect

import cloudpickle
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..core.compat import TaskGroup
from ..core.trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial

if TYPE_CHECKING:
    from ..core.space import Space


class _Finished:
    def __repr__(self) -> str:
        return "FINISHED"


FINISHED: Any = _Finished()
"""Returned by `Searcher.suggest` when it will suggest nothing more."""


Metric = str | list[str]  # one objective, or several (multi-objective: at least two names)
Mode = str | list[str]


def check_metric_mode(owner: str, metric: Any, mode: Any, *, multi_objective: bool = False) -> None:
    """Raise ValueError for a bad metric/mode pair; lists only where `multi_objective`.

    Several metrics need a mode each (or one mode string for all), and distinct names."""
    if not isinstance(metric, (list, tuple)) and not isinstance(mode, (list, tuple)):
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode=}")
        if metric is not None and not isinstance(metric, str):
            raise ValueError(f"{owner}: metric must be a string, got {metric=}")
        return
    if not multi_objective:
        raise ValueError(f"{owner} optimises one metric: metric and mode must be strings, got {metric=}, {mode=}")
    if not isinstance(metric, (list, tuple)):
        raise ValueError(f"{owner}: a list of modes needs a list of metrics of the same length, got {metric=}, {mode=}")
    if not metric or not all(isinstance(m, str) and m for m in metric):
        raise ValueError(f"{owner}: metric must be a non-empty list of metric names, got {metric=}")
    duplicates = sorted({m for m in metric if list(metric).count(m) > 1})
    if duplicates:
        raise ValueError(f"{owner}: each metric may appear once, got {metric=} (repeated: {', '.join(duplicates)})")
    modes = [mode] * len(metric) if mode is None or isinstance(mode, str) else list(mode)
    if len(modes) != len(metric):
        raise ValueError(f"{owner}: pass one mode per metric (or one mode for all), got {len(metric)} metrics "
                         f"{list(metric)} and {len(modes)} modes {modes}")
    bad = [m for m in modes if m is not None and m not in ("min", "max")]
    if bad:
        raise ValueError(f"{owner}: each mode must be 'min' or 'max', got {mode=}")


def objective_pairs(metric: Any, mode: Any) -> list[tuple[str, str | None]]:
    """(metric, mode) for each objective of a normalised metric/mode (see normalize_objectives)."""
    metrics = metric if isinstance(metric, list) else [metric]
    modes = mode if isinstance(mode, list) else [mode] * len(metrics)
    return list(zip(metrics, modes))


def normalize_objectives(metric: Any, mode: Any) -> tuple[Metric | None, Mode | None]:
    """One metric as a string; several as a list with a list of as many modes (a single mode
    string applies to all). A one-element list is one metric. Call after check_metric_mode."""
    if isinstance(metric, (list, tuple)):
        metric = list(metric)
        modes = mode if isinstance(mode, (list, tuple)) else [mode] * len(metric)
        if len(metric) == 1:
            return metric[0], modes[0]
        return metric, (None if all(m is None for m in modes) else list(modes))
    if isinstance(mode, (list, tuple)) and len(mode) == 1:
        return metric, mode[0]
    return metric, mode


def is_multi_objective(metric: Any) -> bool:
    """Several metrics (a list of at least two names, as normalize_objectives leaves them)."""
    return isinstance(metric, list) and len(metric) > 1


# A searcher or scheduler that ranks by one metric, given several: what to use instead.
MULTI_OBJECTIVE_ALTERNATIVES = {
    "scheduler": "MOASHAScheduler (multi-objective early stopping) or FIFOScheduler (no early stopping)",
    "searcher": "RandomSearch/GridSearch (BasicVariantSearch, the default) or OptunaSearch (model-based, "
                "e.g. NSGA-II or multi-objective TPE: pip install 'asynctune[optuna]')",
}


def _take_objectives(owner: Any, kind: str, metric: Any, mode: Any) -> None:
    """set_search_properties' rule: the owner's own metric/mode win; several metrics reach only a
    multi_objective owner, any other one is told what to use instead (before any trial starts)."""
    if owner.metric is None and is_multi_objective(metric) and not owner.multi_objective:
        name = type(owner).__name__
        raise ValueError(
            f"{name} ranks trials by one metric, but run() was given several: metric={metric}. "
            f"Use {MULTI_OBJECTIVE_ALTERNATIVES[kind]}, or give {name} its own metric= and mode= "
            f"to rank by one of them")
    if isinstance(owner.metric, str) and isinstance(mode, list) and owner.mode is None:
        # its own metric, run()'s modes: take the mode run() gave that metric, if it is one of them
        mode = mode[metric.index(owner.metric)] if isinstance(metric, list) and owner.metric in metric else None
    owner.metric = owner.metric or metric
    owner.mode = owner.mode or mode


class Searcher(abc.ABC):
    """Proposes configs. Subclasses implement `suggest`; the other hooks are optional.

    `run()` calls `set_search_properties` before the first suggestion, handing over the search
    space from `run(config=...)`, the metric and mode (when the searcher has none of its own)
    and the experiment seed.

    Set the class attribute `slow = True` when `suggest` may take long (e.g. fitting a model):
    the controller then calls it in a thread so results of running trials keep flowing.

    Set `multi_objective = True` when the searcher handles several metrics (or ignores the
    metric, as random and grid search do). When run() is given several metrics, such a searcher
    gets `metric` as a list of names and `mode` as a list of "min"/"max", one each; with one
    metric, strings as usual. A searcher without it, given several metrics, is an error before
    any trial starts (unless it was given its own metric=).
    """

    slow = False
    multi_objective: bool = False

    def __init__(self, metric: Metric | None = None, mode: Mode | None = None) -> None:
        check_metric_mode(type(self).__name__, metric, mode, multi_objective=self.multi_objective)
        self.metric, self.mode = normalize_objectives(metric, mode)
        self.space: Space | None = None
        self.seed: int | None = None

    def set_search_properties(self, metric: Metric | None, mode: Mode | None, space: Space,
                              *, seed: int | None = None) -> None:
        _take_objectives(self, "searcher", metric, mode)
        self.space = space
        if self.seed is None:
            self.seed = seed

    def max_trials(self, num_samples: int) -> int | None:
        """How many trials the experiment runs at most; None for no limit."""
        return None if num_samples < 0 else num_samples

    @abc.abstractmethod
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """A config for a new trial, None for "not now" (ask again later), or FINISHED."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """An intermediate result of a trial this searcher suggested."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        """The trial ended; `result` is its last result (None if it reported nothing)."""

    def on_trial_pruned(self, trial_id: str, result: dict[str, Any] | None = None) -> None:
        """The scheduler stopped the trial early (ASHA, HyperBand, median stopping, ...).

        `result` is its last result, at a lower budget than a finished trial's. The default
        treats it as complete; a searcher that tells the two apart (OptunaSearch: PRUNED)
        overrides this."""
        self.on_trial_complete(trial_id, result)

    def save(self, path: str) -> None:
        """Write the searcher's state to `path` (used to resume an experiment).

        The default pickles the instance's attributes with cloudpickle (search spaces may hold
        lambdas); override both methods when some attribute cannot be pickled."""
        with open(path, "wb") as f:
            cloudpickle.dump(self.__dict__, f)

    def restore(self, path: str) -> None:
        with open(path, "rb") as f:
            self.__dict__.update(cloudpickle.load(f))


class TrialControl(Protocol):
    """What a scheduler may do to trials other than the one whose result it is deciding on.

    Each call only records the action; the controller applies it right after the scheduler's
    hook (or the coroutine scheduler's step) returns, so no scheduler code runs inside another
    of its own hooks. `trials` shows the state before the recorded actions are applied.
    """

    @property
    def trials(self) -> Sequence[Trial]: ...

    def stop_trial(self, trial: Trial) -> None:
        """End the trial (TERMINATED): a running one at once, a paused one for good."""

    def pause_trial(self, trial: Trial) -> None:
        """Pause a running trial at its next result (it checkpoints and frees its worker)."""

    def resume_trial(self, trial: Trial, *, config: dict[str, Any] | None = None,
                     checkpoint: str | None = None) -> None:
        """Make a paused trial ready to run again, optionally with a new config or checkpoint.

        For a running trial whose pause was decided but has not landed yet, the resume takes
        effect as soon as it is paused; for any other running trial it does nothing."""


class Scheduler(abc.ABC):
    """Decides what happens to running trials, one result at a time (the paper's interface).

    Only `on_trial_result` is required. Its return value is a `Decision` (CONTINUE, PAUSE,
    STOP), a `Mutate(config, checkpoint)`, or an awaitable of one of those; so may
    `on_searcher_finished` return an awaitable. The other hooks are plain calls. Actions on
    other trials (`self.control.stop_trial` ...) take effect after the hook returns.

    Set `multi_objective = True` on a scheduler that ranks by several metrics (it then gets
    lists, as `Searcher` describes) or uses none.

    There is no save/restore: on resume, the controller rebuilds a fresh scheduler's state by
    replaying every recorded result to it (so coroutine schedulers resume too).
    """

    multi_objective: bool = False

    def __init__(self, metric: Metric | None = None, mode: Mode | None = None) -> None:
        check_metric_mode(type(self).__name__, metric, mode, multi_objective=self.multi_objective)
        self.metric, self.mode = normalize_objectives(metric, mode)
        self.control: TrialControl | None = None

    def set_search_properties(self, metric: Metric | None, mode: Mode | None) -> None:
        """Called by run() with its metric and mode; a scheduler's own settings win.

        Several metrics (lists) reach only a `multi_objective` scheduler; any other one raises
        ValueError naming the alternatives, unless it has its own metric."""
        _take_objectives(self, "scheduler", metric, mode)

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work (called before any trial starts)."""

    async def start(self, control: TrialControl) -> None:
        """Called once before the first trial; keeps the handle for acting on trials."""
        self.control = control

    async def close(self) -> None:
        """Called once after the last trial (also on error or cancellation)."""

    def on_trial_add(self, trial: Trial) -> None:
        """A new trial was created (it is PENDING)."""

    @abc.abstractmethod
    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> Decision | Mutate | Awaitable[Decision | Mutate]:
        """Decide on a result of a running trial."""

    def on_trial_complete(self, trial: Trial, result: dict[str, Any] | None) -> None:
        """The trial finished its training function or was stopped (TERMINATED)."""

    def on_trial_error(self, trial: Trial) -> None:
        """The trial failed (ERROR) and will not be retried."""

    def choose_trial_to_run(self, candidates: Sequence[Trial]) -> Trial | None:
        """Which trial to start next when resources free up; None to start nothing now.

        `candidates` are the PENDING and PAUSED trials in creation order. The default runs
        pending trials first, then resumes paused ones.
        """
        for trial in candidates:
            if trial.status is Status.PENDING:
                return trial
        for trial in candidates:
            if trial.status is Status.PAUSED:
                return trial
        return None

    def on_searcher_finished(self) -> None | Awaitable[None]:
        """No trial will be added any more (the searcher finished or num_samples was reached).

        Called once. May return an awaitable (the controller awaits it), e.g. to finish rungs
        that will never fill."""
        return None


async def resolve(outcome: Any) -> Any:
    """The one rule for scheduler hooks: a hook returns its value, or an awaitable of it."""
    if outcome.__class__ is not Decision and inspect.isawaitable(outcome):  # fast path first
        return await outcome
    return outcome


# --- the coroutine form ------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialAdded:
    trial: Trial


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    result: dict[str, Any]


@dataclass(frozen=True)
class TrialEnded:
    """The trial completed (TERMINATED) or failed (ERROR): see trial.status."""

    trial: Trial
    result: dict[str, Any] | None


Event = TrialAdded | TrialResult | TrialEnded


class EventStream:
    """One subscription to a coroutine scheduler's events: an async iterator.

    A stream sees every event published after it was created, in order.
    """

    def __init__(self, owner: CoroutineScheduler) -> None:
        self._owner = owner
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            self._owner._check_settled()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        """Stop receiving events (the stream counts as settled from now on)."""
        self.closed = True
        self._queue.clear()
        if self in self._owner._streams:
            self._owner._streams.remove(self)
        self._wake()
        self._owner._check_settled()

    @property
    def idle(self) -> bool:
        return self.closed or (not self._queue and self._waiter is not None)

    def _push(self, event: Event) -> None:
        self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class CoroutineScheduler(Scheduler):
    """A scheduler written as a coroutine over the stream of trial events.

    Subclasses implement `run()`:

        >>> class StopAfterThree(CoroutineScheduler):
        ...     async def run(self):
        ...         async for event in self.events():
        ...             if isinstance(event, TrialResult) and event.result["training_iteration"] >= 3:
        ...                 self.stop(event.trial)

    Acting on the trial whose result is being decided sets its decision; acting on any other
    trial goes through the controller. Paused trials run again only when `resume`d.
    """

    def __init__(self, metric: Metric | None = None, mode: Mode | None = None) -> None:
        super().__init__(metric, mode)
        self._streams: list[EventStream] = []
        self._deciding: dict[Trial, Decision | Mutate] = {}
        self._settled: asyncio.Event | None = None
        self._group: TaskGroup | None = None  # owns run()'s task from start() to close()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None  # run() failed: raised to the controller

    @abc.abstractmethod
    async def run(self) -> None:
        """The algorithm: iterate over `self.events()` and act on trials."""

    def events(self) -> AsyncIterator[Event]:
        """A new subscription to every event from now on. Create it before awaiting anything."""
        stream = EventStream(self)
        self._streams.append(stream)
        return stream

    # Actions ------------------------------------------------------------------------------------

    def stop(self, trial: Trial) -> None:
        if trial in self._deciding:
            self._deciding[trial] = STOP
        elif not trial.status.is_finished:
            self._control().stop_trial(trial)

    def pause(self, trial: Trial) -> None:
        if trial in self._deciding:
            self._deciding[trial] = PAUSE
        elif trial.status is Status.RUNNING:
            self._control().pause_trial(trial)

    def resume(self, trial: Trial, *, config: dict[str, Any] | None = None,
               checkpoint: str | None = None) -> None:
        """Run a paused trial again (promote it), optionally with a new config or checkpoint."""
        self._control().resume_trial(trial, config=config, checkpoint=checkpoint)

    def mutate(self, trial: Trial, config: dict[str, Any], checkpoint: str | None) -> None:
        """Restart `trial` (whose result is being decided) with `config` from `checkpoint`."""
        if trial not in self._deciding:
            raise RuntimeError(f"mutate({trial.trial_id}) is only possible while deciding on its result")
        self._deciding[trial] = Mutate(config, checkpoint)

    async def settled(self) -> None:
        """Wait until `run()` has taken in every event so far and waits for the next one: for
        driving a scheduler by hand, as its tests do (docs/schedulers/write-your-own.md)."""
        await self._wait_settled()

    def _control(self) -> TrialControl:
        if self.control is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a running experiment")
        return self.control

    # The Scheduler interface, built on the stream ------------------------------------------------

    async def start(self, control: TrialControl) -> None:
        await super().start(control)
        self._settled = asyncio.Event()
        # Entered here and exited in close(), both in the controller's task: the group outlives
        # start() like the scheduler does. run()'s errors never reach the group (they would
        # cancel the controller); _wait_settled raises them to whoever waits for a decision.
        self._group = TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self._run_guarded(), name=f"{type(self).__name__}.run")
        await self._wait_settled()

    async def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(None, None, None)  # waits for the cancelled task to end

    def on_trial_add(self, trial: Trial) -> None:
        self._publish(TrialAdded(trial))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> Awaitable[Decision | Mutate]:
        self._deciding[trial] = CONTINUE
        self._publish(TrialResult(trial, result))
        return self._decision(trial)

    def on_trial_complete(self, trial: Trial, result: dict[str, Any] | None) -> None:
        self._publish(TrialEnded(trial, result))

    def on_trial_error(self, trial: Trial) -> None:
        self._publish(TrialEnded(trial, trial.last_result))

    def choose_trial_to_run(self, candidates: Sequence[Trial]) -> Trial | None:
        for trial in candidates:
            if trial.status is Status.PENDING:
                return trial
        return None

    async def _decision(self, trial: Trial) -> Decision | Mutate:
        try:
            await self._wait_settled()
            return self._deciding[trial]
        finally:
            self._deciding.pop(trial, None)

    def _publish(self, event: Event) -> None:
        if self._settled is not None:
            self._settled.clear()
        for stream in list(self._streams):
            stream._push(event)
        self._check_settled()

    def _check_settled(self) -> None:
        if self._settled is None:
            return
        task_done = self._task is not None and self._task.done()
        if task_done or (self._streams and all(s.idle for s in self._streams)):
            self._settled.set()

    async def _wait_settled(self) -> None:
        assert self._settled is not None and self._task is not None
        self._check_settled()
        if not self._settled.is_set():
            await self._settled.wait()
        if self._failure is not None:
            raise self._failure  # the algorithm itself failed: that ends the experiment

    async def _run_guarded(self) -> None:
        try:
            await self.run()
        except Exception as exc:
            self._failure = exc
        finally:
            assert self._settled is not None
            self._settled.set()
