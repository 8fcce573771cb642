"""The trial table: every trial of the experiment, which of them wait to run and which run,
and each one's `TrialRuntime`. Only its methods change who is in which set, so the controller
and its collaborators (outcomes, the monitor) never edit shared dicts behind each other's back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from ..core.trial import Status, Trial
from .runtime import TrialRuntime


class TrialTable:
    """Trials in the order they were added; waiting and running ones; their runtimes.

    A trial waits (PENDING or PAUSED, ready for `choose_trial_to_run`) or runs, never both.
    A runtime is made on first use and dropped once its trial has ended and its files are closed.
    """

    def __init__(self, trials: Sequence[Trial], make_runtime: Callable[[Trial], TrialRuntime]) -> None:
        self.trials: list[Trial] = list(trials)
        self._make_runtime = make_runtime
        self._runtimes: dict[Trial, TrialRuntime] = {}
        self._waiting: dict[Trial, None] = {t: None for t in self.trials if t.status in (Status.PENDING, Status.PAUSED)}
        self._running: dict[Trial, TrialRuntime] = {}

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials)

    # Membership ------------------------------------------------------------------------------

    def add(self, trial: Trial) -> None:
        """A new trial from the searcher: it waits to run."""
        self.trials.append(trial)
        self._waiting[trial] = None

    def wait(self, trial: Trial) -> None:
        """It will run (again): a retry, a resume, a pause."""
        self._waiting[trial] = None

    def unwait(self, trial: Trial) -> None:
        """It no longer waits: it ended while waiting."""
        self._waiting.pop(trial, None)

    def start(self, trial: Trial) -> TrialRuntime:
        """It leaves the waiting trials for the running ones."""
        self._waiting.pop(trial, None)
        runtime = self._running[trial] = self.runtime(trial)
        return runtime

    def stopped_running(self, trial: Trial) -> None:
        """Its attempt is over (whatever comes next for it); an ended trial's runtime is dropped."""
        self._running.pop(trial, None)
        if trial.status.is_finished:  # its files are closed: the tick need not visit it
            self._runtimes.pop(trial, None)

    # Queries ---------------------------------------------------------------------------------

    def runtime(self, trial: Trial) -> TrialRuntime:
        runtime = self._runtimes.get(trial)
        if runtime is None:
            runtime = self._runtimes[trial] = self._make_runtime(trial)
        return runtime

    def runtimes(self) -> list[TrialRuntime]:
        """Every live runtime (their files may need a flush)."""
        return list(self._runtimes.values())

    def running(self) -> list[TrialRuntime]:
        return list(self._running.values())

    def running_items(self) -> Iterable[tuple[Trial, TrialRuntime]]:
        return list(self._running.items())

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def any_waiting(self) -> bool:
        return bool(self._waiting)

    def waiting_fresh(self) -> bool:
        """Whether a trial that never ran waits (else the searcher is asked for one); a resumed
        trial, PENDING again, does not hold new trials back."""
        return any(t.status is Status.PENDING and not t.num_results for t in self._waiting)

    def candidates(self) -> list[Trial]:
        """The waiting trials, in the order they were added: what the scheduler chooses from."""
        return sorted(self._waiting, key=lambda t: t.index)
