"""Model-based searchers inside a real experiment: asynctune.run with worker processes."""

from __future__ import annotations

import sys
from collections.abc import Callable

import cloudpickle
import pytest

import asynctune
from asynctune.algorithms import ConcurrencyLimiter, SkOptSearch, TPESearch
from asynctune.algorithms.base import Searcher


def train(config: dict) -> None:
    for step in range(1, 4):
        asynctune.report(loss=(config["x"] - 0.3) ** 2 + 0.1 * (config["kind"] == "b") + 1.0 / step)


# Workers cannot import this test module: send `train` by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SEARCHERS: dict[str, Callable[[], Searcher]] = {
    "tpe": lambda: TPESearch(n_startup_trials=4, seed=0),
    "skopt-in-a-thread": lambda: ConcurrencyLimiter(SkOptSearch(n_initial_points=4, base_estimator="ET", seed=0), 1),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("make", SEARCHERS.values(), ids=SEARCHERS.keys())
def test_run_with_a_model_based_searcher(make: Callable[[], Searcher], tmp_path) -> None:
    searcher = make()
    analysis = asynctune.run(
        train, config={"x": asynctune.uniform(0, 1), "kind": asynctune.choice(["a", "b"])}, num_samples=12,
        metric="loss", mode="min", search_alg=searcher, max_concurrent_trials=2,
        storage_path=str(tmp_path), name="search", verbose=0)
    trials = analysis.trials
    assert len(trials) == 12
    assert all(t.status is asynctune.Status.TERMINATED for t in trials)
    model = searcher.searcher if isinstance(searcher, ConcurrencyLimiter) else searcher
    # Every trial's final result reached the searcher (the last of 3 steps, with loss > 1/3).
    assert sorted(loss for _, loss in model.observations) == sorted(t.last_result["loss"] for t in trials)
    assert not model._live
    # A decent config (12 random trials get there 97 times in 100). 12 trials, not 10: two trials run
    # at once, so which results TPE has seen varies from run to run, and with 10 its category
    # schedule (half of the first ~9 trials to each kind) left it short now and then.
    assert analysis.best_result["loss"] < 0.4
    if isinstance(searcher, ConcurrencyLimiter):  # one at a time, though run() allows two
        spans = sorted((t.start_time, t.end_time) for t in trials)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


def report_types(config: dict) -> None:
    """Reports the type of each value as the worker process received it."""
    opt = config["opt"]
    asynctune.report(loss=0.0, lr=type(config["lr"]).__name__, bs=type(config["bs"]).__name__,
                     width=type(config["width"]).__name__, opt=type(opt).__name__ if not isinstance(opt, dict)
                     else f"dict:{type(opt['momentum']).__name__}", momentum=opt.get("momentum", -1.0)
                     if isinstance(opt, dict) else -1.0, width_value=config["width"])


@pytest.mark.timeout(120)
def test_a_real_run_gets_plain_values_from_numpy_grids_domains_in_grids_and_qlograndint(tmp_path) -> None:
    # Ray users write grid_search(np.linspace(...)), a grid of dicts holding domains, qlograndint:
    # before, the first two were refused or reached the trainable as a Domain object, the last
    # did not exist.
    import numpy as np

    space = {"lr": asynctune.grid_search(np.linspace(0.1, 0.3, 3)), "bs": asynctune.choice(np.array([16, 32])),
             "width": asynctune.qlograndint(8, 64, 8),
             "opt": asynctune.grid_search([{"name": "sgd", "momentum": asynctune.uniform(0.5, 0.9)}, "adam"])}
    analysis = asynctune.run(report_types, config=space, num_samples=2, storage_path=str(tmp_path), name="types",
                             verbose=0, seed=0)
    results = [t.last_result for t in analysis.trials]
    assert len(results) == 3 * 2 * 2
    assert {(r["lr"], r["bs"], r["width"]) for r in results} == {("float", "int", "int")}
    assert sorted({r["opt"] for r in results}) == ["dict:float", "str"]
    assert all(0.5 <= r["momentum"] <= 0.9 for r in results if r["opt"] == "dict:float")
    assert all(r["width_value"] % 8 == 0 and 8 <= r["width_value"] <= 64 for r in results)


SEARCHERS_WITH_POINTS: dict[str, Callable[..., Searcher]] = {
    "basic": lambda **kw: asynctune.BasicVariantSearch(**kw),
    "tpe": lambda **kw: TPESearch(**kw),
    "skopt": lambda **kw: SkOptSearch(**kw),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("make", SEARCHERS_WITH_POINTS.values(), ids=SEARCHERS_WITH_POINTS.keys())
@pytest.mark.parametrize("point, message", [
    ({"X": 0.3}, r"points_to_evaluate\[0\] sets config\['X'\], which is not in the search space; the keys there "
                 r"are \['kind', 'x'\]"),
    ({"x": 3.0}, r"points_to_evaluate value 3.0 at config\['x'\] is not a number in \[0.0, 1.0\]"),
], ids=["misspelt-key", "outside"])
def test_a_bad_point_to_evaluate_fails_run_before_any_trial(make, point, message, tmp_path) -> None:
    # Before: a misspelt key was dropped by the model-based searchers (and added to the config by
    # the default one), so the point the user meant never ran; the default searcher also ran x=3.0.
    with pytest.raises(ValueError, match=message):
        asynctune.run(train, config={"x": asynctune.uniform(0, 1), "kind": asynctune.choice(["a", "b"])},
                      num_samples=2, metric="loss", mode="min", search_alg=make(points_to_evaluate=[point]),
                      storage_path=str(tmp_path), name="points", verbose=0)
    assert not list(tmp_path.glob("points/trial_*"))


def report_copy(config: dict) -> None:
    asynctune.report(loss=1.0, copy=dict(config["copy"]), kind=type(config["copy"]).__name__)


@pytest.mark.timeout(60)
def test_a_sample_from_that_returns_part_of_the_config_runs(tmp_path) -> None:
    # Before, the value was asynctune's internal view of the config: every worker exited with code 1.
    analysis = asynctune.run(
        report_copy, config={"model": {"width": asynctune.randint(8, 64)},
                             "copy": asynctune.sample_from(lambda config: config["model"])},
        num_samples=2, storage_path=str(tmp_path), name="copy", verbose=0, raise_on_failed_trial="never")
    assert [t.status for t in analysis.trials] == [asynctune.Status.FINISHED] * 2
    for trial in analysis.trials:
        assert trial.last_result["kind"] == "dict" and trial.last_result["copy"] == trial.config["model"]


class _TwoPoints(Searcher):
    """A searcher of one's own written as for Ray: two configs, then Searcher.FINISHED."""

    def __init__(self) -> None:
        super().__init__(metric="loss", mode="min")
        self.points = [{"x": 0.1, "kind": "a"}, {"x": 0.2, "kind": "b"}]

    def suggest(self, trial_id: str) -> dict | None:
        return self.points.pop(0) if self.points else Searcher.FINISHED


@pytest.mark.timeout(60)
def test_a_searcher_of_ones_own_ends_the_run_with_searcher_finished(tmp_path) -> None:
    # Before, Searcher had no FINISHED attribute: the first suggestion past the points raised.
    analysis = asynctune.run(train, search_alg=_TwoPoints(), num_samples=-1, storage_path=str(tmp_path),
                             name="own", verbose=0)
    assert sorted(t.config["x"] for t in analysis.trials) == [0.1, 0.2]


def report_opt(config: dict) -> None:
    asynctune.report(loss=0.0, keys=sorted(config["opt"]) if isinstance(config["opt"], dict) else [])


@pytest.mark.timeout(60)
def test_a_partial_point_in_a_conditional_space_gets_its_branch_complete(tmp_path) -> None:
    # Before, the default searcher ran {"opt": {"name": "sgd"}} without momentum when it drew another branch.
    space = {"opt": asynctune.choice([{"name": "sgd", "momentum": asynctune.uniform(0, 1)}, "none"])}
    analysis = asynctune.run(
        report_opt, config=space, num_samples=1, seed=1, storage_path=str(tmp_path), name="branch", verbose=0,
        search_alg=asynctune.BasicVariantSearch(points_to_evaluate=[{"opt": {"name": "sgd"}}] * 4))
    assert [t.last_result["keys"] for t in analysis.trials[:4]] == [["momentum", "name"]] * 4


def sleepy(config: dict) -> None:
    import time

    time.sleep(0.2 + config["x"] * 0.2)
    asynctune.report(loss=(config["x"] - 0.3) ** 2)


@pytest.mark.timeout(120)
def test_a_limiter_in_batches_starts_a_batch_when_the_last_one_has_ended(tmp_path) -> None:
    analysis = asynctune.run(
        sleepy, config={"x": asynctune.uniform(0, 1)}, num_samples=6, metric="loss", mode="min",
        search_alg=ConcurrencyLimiter(TPESearch(n_startup_trials=2, seed=0), max_concurrent=2, batch=True),
        max_concurrent_trials=4, storage_path=str(tmp_path), name="batches", verbose=0)
    trials = sorted(analysis.trials, key=lambda t: t.start_time)
    assert len(trials) == 6
    for earlier, later in zip(range(0, 4, 2), range(2, 6, 2)):  # batches of 2, one after the other
        assert max(t.end_time for t in trials[earlier:earlier + 2]) <= min(t.start_time for t in trials[later:later + 2])


class _SlowToAnswer(Searcher):
    """Says "not now" (None) for its first second, then gives one config, then FINISHED."""

    def __init__(self) -> None:
        super().__init__(metric="loss", mode="min")
        self.start: float | None = None
        self.given = False

    def suggest(self, trial_id: str) -> dict | None:
        import time
        self.start = self.start or time.monotonic()
        if time.monotonic() - self.start < 1.0:
            return None
        if self.given:
            return Searcher.FINISHED
        self.given = True
        return {"x": 0.5, "kind": "a"}


@pytest.mark.timeout(60)
def test_a_searcher_that_says_not_now_while_nothing_runs_is_named_in_a_warning(tmp_path, monkeypatch, caplog) -> None:
    # The run can only wait for such a searcher (a searcher of one's own whose count of running
    # trials went wrong waits for ever): after a while a warning names it and says what to return.
    import asynctune.controller.loop as loop
    monkeypatch.setattr(loop, "_STALLED_WARNING_S", 0.3)
    with caplog.at_level("WARNING", logger="asynctune.controller.loop"):
        analysis = asynctune.run(train, search_alg=_SlowToAnswer(), num_samples=-1, storage_path=str(tmp_path),
                                 name="slow", verbose=0)
    assert len(analysis.trials) == 1
    warnings = [r.getMessage() for r in caplog.records if "_SlowToAnswer" in r.getMessage()]
    assert len(warnings) == 1 and "Searcher.FINISHED" in warnings[0]
