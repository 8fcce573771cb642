"""What ends a trial or the experiment between two results: stop= as a dict, a callable or a
Stopper, decided by the controller; on the simulated executor (deterministic, no process)."""

from __future__ import annotations

import numpy as np

import asynctune as at
from asynctune.executors.simulated.executor import Workload


def endless(epochs: int = 50) -> Workload:
    """One config whose loss is 1/i at iteration i (and reports i itself), for `epochs` epochs."""
    i = np.arange(1, epochs + 1, dtype=float)[None, :]
    return Workload("endless", [{"x": 0}], {"loss": 1 / i, "i": i}, np.ones(i.shape), metric="loss", mode="min",
                    space={"x": {"type": "int", "low": 0, "high": 0}})


def test_stop_dict_callable_and_stopper(simulated):
    by_dict = simulated(endless(), name="dict", stop={"training_iteration": 5})
    assert by_dict.trials[0].num_results == 5
    by_metric = simulated(endless(), name="metric", stop={"loss": 0.1})
    assert by_metric.trials[0].last_result["i"] == 10  # mode=min: stop once the loss is down to 0.1
    by_callable = simulated(endless(), name="callable", stop=lambda trial_id, result: result["i"] >= 7)
    assert by_callable.trials[0].num_results == 7

    class AllDone(at.Stopper):
        def __init__(self):
            self.seen = 0

        def stop_all(self):
            self.seen += 1
            return self.seen >= 12

    everything = simulated(endless(), name="all", config={"x": 0}, num_samples=10, workers=2, stop=AllDone())
    assert sum(t.num_results for t in everything.trials) <= 14
    assert all(t.status is at.Status.TERMINATED for t in everything.trials if t.num_results)


def test_a_training_iteration_threshold_names_the_iteration_it_stops_at():
    from asynctune.core.stopper import ThresholdStopper

    assert ThresholdStopper({"training_iteration": 10}).stop_iteration(after=0) == 10
    assert ThresholdStopper({"training_iteration": 9.5, "loss": 0.1}).stop_iteration(after=3) == 10
    assert ThresholdStopper({"training_iteration": 10}).stop_iteration(after=12) == 13  # restored past it
    assert ThresholdStopper({"loss": 0.1}).stop_iteration(after=0) is None  # a metric's: unforeseeable
    # The experiment's metric, minimised: any result may stop the trial.
    assert ThresholdStopper({"training_iteration": 5}, metric="training_iteration", mode="min").stop_iteration(
        after=0) is None
