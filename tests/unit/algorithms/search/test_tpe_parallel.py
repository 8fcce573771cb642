"""TPESearch with several trials at once: running trials steer the next suggestion away from
themselves, and a run with four trials in flight goes through the controller end to end."""

from __future__ import annotations

from typing import Any

import numpy as np

from asynctune.algorithms.search.model_based import Observation, Values
from asynctune.algorithms.search.tpe import TPESearch
from asynctune.core.space import Space, uniform
from asynctune.core.trial import Status
from asynctune.executors.simulated.workloads import Workload

SPACE = {"x": uniform(0, 1), "y": uniform(0, 1)}


def bowl(config: dict[str, Any]) -> float:
    return (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2


def next_is_near_running(seed: int, *, keep_running: bool, radius: float = 0.05) -> bool:
    """After 30 finished trials, four more are suggested; the fifth suggestion is made while they
    run (keep_running) or after they ended in error (so the model forgets them). Whether the fifth
    lies within `radius` of one of the four in both coordinates. Both arms draw the same random
    numbers: only the running trials differ."""
    searcher = TPESearch(metric="loss", mode="min", seed=seed)
    searcher.set_search_properties(None, None, Space(SPACE))
    for i in range(30):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": bowl(config)})
    running = [searcher.suggest(f"r{i}") for i in range(4)]
    if not keep_running:
        for i in range(4):
            searcher.on_trial_complete(f"r{i}", None, error=True)
    proposal = searcher.suggest("next")
    return any(max(abs(proposal[k] - r[k]) for k in SPACE) < radius for r in running)


def test_running_trials_are_not_proposed_again() -> None:
    # Without running trials, TPE's favourite region is where it put the four: the fifth often
    # lands next to one of them. With them running, it goes elsewhere.
    seeds = range(40)
    near_when_forgotten = sum(next_is_near_running(s, keep_running=False) for s in seeds)
    near_when_running = sum(next_is_near_running(s, keep_running=True) for s in seeds)
    assert near_when_forgotten >= 10, near_when_forgotten  # the setting does produce near-duplicates
    assert near_when_running <= near_when_forgotten / 4, (near_when_running, near_when_forgotten)


class RecordingTPE(TPESearch):
    """TPESearch that notes how many trials were running at each model-based suggestion."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.running_seen: list[int] = []

    def _propose(self, observations: list[Observation], pending: list[Values],
                 rng: np.random.Generator) -> Values:
        self.running_seen.append(len(pending))
        return super()._propose(observations, pending, rng)


def bowl_workload(n: int = 21, epochs: int = 3) -> Workload:
    """A grid of n x n configs on [0, 1]^2 with the bowl's loss; epochs take 1-4 s (config-dependent),
    so four trials at once end out of order."""
    grid = np.linspace(0, 1, n)
    configs = [{"x": float(x), "y": float(y)} for x in grid for y in grid]
    loss = np.array([[bowl(c)] * epochs for c in configs])
    times = np.random.default_rng(0).uniform(1.0, 4.0, size=(len(configs), 1)).repeat(epochs, axis=1)
    return Workload("bowl", configs, {"loss": loss}, times, metric="loss", mode="min",
                    space={"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False},
                           "y": {"type": "float", "low": 0.0, "high": 1.0, "log": False}})


def test_run_with_four_trials_at_once(simulated) -> None:
    searcher = RecordingTPE(n_startup_trials=4, seed=0)
    analysis = simulated(bowl_workload(), config=dict(SPACE), num_samples=24, search_alg=searcher,
                         workers=4, max_concurrent_trials=4)
    trials = analysis.trials
    assert len(trials) == 24 and all(t.status is Status.FINISHED for t in trials), [t.status for t in trials]
    # The model was asked while other trials ran: three at once once the startup trials ended.
    assert searcher.running_seen and max(searcher.running_seen) == 3, searcher.running_seen
    configs = {(t.config["x"], t.config["y"]) for t in trials}
    assert len(configs) == 24  # no config twice
    best = min(analysis.trial_results(t.trial_id)[-1]["loss"] for t in trials)
    assert best < 0.02  # random search's median best of 24 on this bowl is about 0.01-0.02
