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
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..core.compat import TaskGroup
from ..core.objectives import (  # noqa: F401  (the algorithms' vocabulary, as before)
    MULTI_OBJECTIVE_ALTERNATIVES, Metric, Mode, _take_objectives, check_metric_mode, is_multi_objective,
    normalize_objectives, objective_pairs,
)
from ..core.trial import CONTINUE, PAUSE, STOP, Decision, Mutate, Status, Trial

if TYPE_CHECKING:
    from ..core.space import Space


class _Finished:
    def __repr__(self) -> str:
        return "FINISHED"


FINISHED: Any = _Finished()
"""Returned by `Searcher.suggest` when it will suggest nothing more."""


class Searcher(abc.ABC):
    """Proposes configs. Subclasses implement `suggest`; the other hooks are optional.

    `run()` calls `set_search_properties` before the first suggestion, handing over the search
    space from `run(config=...)`, the metric and mode (when the searcher has none of its own)
    and the experiment seed.

    Set the class attribute `slow = True` when `suggest` may take long (e.g. fitting a model):
    the controller then calls it in a thread so results of running trials keep flowing.

    Set `replayable = True` when `suggest` depends only on the seed and on how many configs
    were asked for before (what hooks such as `on_trial_complete` are told changes nothing):
    the controller then saves its state once, at the end, instead of after every suggestion and
    completion, and a resume rebuilds it by asking it again for every recorded trial's config.

    Set `multi_objective = True` when the searcher handles several metrics (or ignores the
    metric, as random and grid search do). When run() is given several metrics, such a searcher
    gets `metric` as a list of names and `mode` as a list of "min"/"max", one each; with one
    metric, strings as usual. A searcher without it, given several metrics, is an error before
    any trial starts (unless it was given its own metric=).
    """

    FINISHED: Any = FINISHED  # `return self.FINISHED` / `Searcher.FINISHED`, as Ray's searchers write it
    slow = False
    multi_objective: bool = False
    # True when suggest() depends on nothing but the seed and how many configs were asked for
    # (random and grid search): its state is then written once, at the end, not after every
    # trial, and a resume rebuilds it exactly by asking it again for each recorded trial.
    replayable: bool = False

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

    def on_trial_paused(self, trial_id: str) -> None:
        """The trial paused (HyperBand's rung, promotion ASHA, PBT's turn): it holds no worker
        and waits for the scheduler to resume it. `on_trial_resumed` follows if it runs again."""

    def on_trial_resumed(self, trial_id: str) -> None:
        """A paused trial was made ready to run again."""

    def set_experiment_dir(self, path: str) -> None:
        """The experiment's directory, given after `set_search_properties` and, on resume, before
        `restore`. A searcher that keeps state in files of its own (OptunaSearch: its study's
        journal) puts them there; the default keeps nothing there."""

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
        """End the trial (EARLY_STOPPED, or FINISHED at max_t): a running one at once, a paused one for good."""

    def pause_trial(self, trial: Trial) -> None:
        """Pause a running trial at its next result (it checkpoints and frees its worker)."""

    def resume_trial(self, trial: Trial, *, config: dict[str, Any] | None = None,
                     checkpoint: str | None = None) -> None:
        """Make a paused trial ready to run again, optionally with a new config or checkpoint.

        For a running trial whose pause was decided but has not landed yet, the resume takes
        effect as soon as it is paused; for any other running trial it does nothing."""


def scheduler_seed(seed: int) -> list[int]:
    """The seed of a scheduler's own draws, from run()'s `seed`: a stream apart from the searcher's,
    which run() seeds with the same number."""
    return [seed, 0x5C4ED]


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

    def set_seed(self, seed: int | None) -> None:
        """run()'s `seed`, for a scheduler that draws at random and was given no seed of its own
        (ASHA's brackets, PBT's donors and explore): the same seed then repeats the same run.
        The default draws nothing and ignores it."""

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work (called before any trial starts)."""

    def complete_search_space(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        """run()'s `config` with what this scheduler needs sampled added (before any trial).

        The default changes nothing; PopulationBasedTraining adds the keys of
        hyperparam_mutations that `config` lacks, as domains sampled for each trial."""
        return config

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

    def synchronous_results(self, trial: Trial) -> Collection[int] | None:
        """Which results of `trial` (by training_iteration) must wait for their decision.

        None (the default): every one, so a decision on result k is in force before step k+1
        starts (the Tune paper's guarantee). A collection, maybe empty: the executor may let the
        trial run on while the other results are decided (SSHExecutor does; LocalExecutor too
        unless run() has a stop criterion); their decision lands at a later report, a step late
        or a few, and the results sent meanwhile are dropped, never recorded. Return one only
        for a scheduler whose decisions elsewhere may come late: a STOP (those steps are lost)
        or a rare PAUSE (the trial rewinds to its newest checkpoint); a MUTATE elsewhere may find
        the trial ended. See docs/ssh.md and docs/faults.md.

        Example (decide only at rungs 1, 3 and 9):
            >>> def synchronous_results(self, trial):
            ...     return {1, 3, 9}
        """
        return None

    def on_trial_complete(self, trial: Trial, result: dict[str, Any] | None) -> None:
        """The trial finished its training function or was stopped (FINISHED or EARLY_STOPPED)."""

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

    def on_searcher_stalled(self) -> None | Awaitable[None]:
        """The searcher suggests nothing for now (a ConcurrencyLimiter counting paused trials),
        no trial runs, and none of the waiting trials may run: only the scheduler can move on.

        Called each time the controller finds it so (it asks the searcher again soon). May return
        an awaitable, as on_searcher_finished; e.g. HyperBand closes the bracket it is filling."""
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
    """The trial completed (FINISHED or EARLY_STOPPED) or failed (ERROR): see trial.status."""

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
