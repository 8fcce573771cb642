"""Population based training (Jaderberg et al. 2017): quantiles, exploit targets, explore, lineage."""

from __future__ import annotations

import math

import pytest

from asynctune import (
    CONTINUE, Mutate, PopulationBasedTraining, Trial, choice, loguniform, randint, randn, sample_from, uniform,
)

from asynctune.controller.replay import replay_history
from tests.helpers.scheduler_runs import simulate
from tests.helpers.schedulers import RecordingControl, make_trials


def pbt(**kwargs) -> PopulationBasedTraining:
    kwargs = {"metric": "acc", "mode": "max", "perturbation_interval": 2,
              "hyperparam_mutations": {"lr": uniform(0.001, 1.0)}, "seed": 0, **kwargs}
    return PopulationBasedTraining(**kwargs)


def population(sched: PopulationBasedTraining, n: int, config=None) -> list[Trial]:
    trials = make_trials(n)
    for trial in trials:
        trial.config = dict(config or {"lr": 0.1, "bs": 32})
        sched.on_trial_add(trial)
    sched.control = RecordingControl(trials)
    sched.on_searcher_finished()  # the whole population is there (no time-sharing pause for trials to come)
    return trials


def report(sched, trial, it, acc):
    trial.checkpoint = f"/exp/{trial.trial_id}/checkpoint_{it:06d}"
    return sched.on_trial_result(trial, {"training_iteration": it, "acc": acc})


@pytest.mark.parametrize("kwargs, message", [
    ({"perturbation_interval": 0}, "perturbation_interval must be a positive number"),
    ({"burn_in_period": -1}, "burn_in_period must be a finite number >= 0"),
    ({"burn_in_period": float("nan")}, "burn_in_period must be a finite number >= 0"),
    ({"hyperparam_mutations": {}}, "needs hyperparam_mutations or custom_explore_fn"),
    ({"hyperparam_mutations": {"lr": 0.1}}, r"hyperparam_mutations\['lr'\]: expected a domain"),
    ({"hyperparam_mutations": {"lr": []}}, r"hyperparam_mutations\['lr'\]: the list of values is empty"),
    ({"hyperparam_mutations": {"o": {"lr": "x"}}}, r"hyperparam_mutations\['o'\]\['lr'\]"),
    ({"hyperparam_mutations": {"lr": sample_from(lambda c: 1)}}, "cannot be sampled alone"),
    ({"quantile_fraction": 0.6}, r"quantile_fraction must be in \[0, 0.5\]"),
    ({"quantile_fraction": -0.1}, r"quantile_fraction must be in \[0, 0.5\]"),
    ({"quantile_fraction": float("nan")}, r"quantile_fraction must be in \[0, 0.5\]"),
    ({"resample_probability": 1.5}, r"resample_probability must be in \[0, 1\]"),
    ({"perturbation_factors": (1.2, -1)}, "perturbation_factors must be a list or tuple of positive"),
    ({"perturbation_factors": (1.2, float("inf"))}, "perturbation_factors must be a list or tuple of positive"),
    ({"perturbation_factors": 1.2}, "perturbation_factors must be a list or tuple of positive"),
    ({"custom_explore_fn": 3}, "custom_explore_fn must be callable"),
], ids=["interval-0", "burn-in-negative", "burn-in-nan", "no-mutations", "constant", "empty-list", "nested-bad",
        "sample-from", "quantile-above-half", "quantile-negative", "quantile-nan", "resample-above-1",
        "negative-factor", "infinite-factor", "factor-not-a-list", "explore-not-callable"])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pbt(**kwargs)


def test_quantile_fraction_0_means_no_exploitation_as_in_ray_tune():
    sched = pbt(perturbation_interval=1, quantile_fraction=0)
    a, b = population(sched, 2)
    for it in (1, 2, 3):
        assert report(sched, a, it, 1.0) is CONTINUE
        assert report(sched, b, it, 0.0) is CONTINUE
    assert b.lineage == []


def test_accepts_custom_explore_fn_alone():
    pbt(hyperparam_mutations=None, custom_explore_fn=lambda c: c).validate()


def test_a_mutated_key_missing_from_the_config_is_named():
    sched = pbt(hyperparam_mutations={"momentum": [0.8, 0.9]})
    with pytest.raises(ValueError, match=r"hyperparam_mutations\['momentum'\] is not in the config of trial t0"):
        population(sched, 1)


def test_nothing_happens_between_perturbation_intervals_or_in_burn_in():
    sched = pbt(perturbation_interval=3, burn_in_period=4)
    trials = population(sched, 4)
    mutated_at = []
    for it in range(1, 11):
        for i, trial in [*list(enumerate(trials))[1:], (0, trials[0])]:  # t0, the worst, reports last
            decision = report(sched, trial, it, float(i))
            if it < 4:
                assert decision is CONTINUE, it  # burn-in: not even ranked yet
            if isinstance(decision, Mutate):
                mutated_at.append((trial.trial_id, it))
    # First ranking at step 4 (burn-in over); t0 clones a checkpoint of that same step, so its
    # next chances are at 4 + 3 = 7 and 10, and nothing happens between them.
    assert mutated_at == [("t0", 4), ("t0", 7), ("t0", 10)]


def test_the_bottom_quantile_clones_a_top_trial_and_explores():
    sched = pbt(quantile_fraction=0.25)
    t = population(sched, 8)
    for i, trial in enumerate(t):
        trial.config = {"lr": 0.1 * (i + 1), "bs": 32}
    # Step 2: accuracy = index, so each trial is the best ranked so far when it reports: no exploit.
    assert [report(sched, trial, 2, float(i)) for i, trial in enumerate(t)] == [CONTINUE] * 8
    # Step 4: now the ranking holds all 8: t0 and t1 are the bottom 2, t6 and t7 the top 2.
    for i, trial in enumerate(t):
        decision = report(sched, trial, 4, float(i))
        if i < 2:
            assert isinstance(decision, Mutate), i
            donor = decision.checkpoint.split("/")[2]
            assert donor in ("t6", "t7")
            assert decision.checkpoint == f"/exp/{donor}/checkpoint_000002"
            donor_config = t[int(donor[1:])].config
            assert decision.config["bs"] == 32
            assert decision.config["lr"] != donor_config["lr"]  # explored
            (entry,) = trial.lineage
            assert entry["donor"] == donor and entry["training_iteration"] == 4
            assert entry["old_config"] == {"lr": 0.1 * (i + 1), "bs": 32}
            assert entry["donor_config"] == donor_config and entry["new_config"] == decision.config
            assert entry["donor_checkpoint"] == decision.checkpoint
        else:
            assert decision is CONTINUE, i


def test_a_top_trial_without_checkpoint_is_no_donor():
    sched = pbt(perturbation_interval=1)
    a, b = population(sched, 2)
    assert sched.on_trial_result(a, {"training_iteration": 1, "acc": 1.0}) is CONTINUE
    # b is the bottom half, but a never checkpointed: nothing to clone.
    assert sched.on_trial_result(b, {"training_iteration": 1, "acc": 0.0}) is CONTINUE
    assert b.lineage == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_diverged_trial_is_the_worst_and_exploits(bad):
    sched = pbt(metric="loss", mode="min", perturbation_interval=1)
    a, b = population(sched, 2)
    a.checkpoint = "/exp/t0/checkpoint_000001"
    assert sched.on_trial_result(a, {"training_iteration": 1, "loss": 0.0}) is CONTINUE
    b.checkpoint = "/exp/t1/checkpoint_000001"
    decision = sched.on_trial_result(b, {"training_iteration": 1, "loss": bad})
    assert isinstance(decision, Mutate) and decision.checkpoint == "/exp/t0/checkpoint_000001"


def run_population(seed: int) -> list[tuple[str, dict]]:
    sched = pbt(perturbation_interval=1, seed=seed,
                hyperparam_mutations={"lr": loguniform(1e-4, 1e-1), "bs": [16, 32, 64, 128], "depth": randint(1, 9)})
    t = population(sched, 6, {"lr": 0.01, "bs": 32, "depth": 4})
    out = []
    for it in range(1, 6):
        for i, trial in enumerate(t):
            decision = report(sched, trial, it, float((i * 7 + it * 3) % 6))
            if isinstance(decision, Mutate):
                trial.config = decision.config
                out.append((trial.trial_id, decision.config))
    return out


def test_a_seed_makes_exploit_and_explore_repeatable():
    first = run_population(3)
    assert first and first == run_population(3)
    assert first != run_population(4)


def explore_many(mutation, old, *, resample_probability=0.0, factors=(1.2, 0.8), n=200):
    sched = pbt(hyperparam_mutations={"v": mutation}, resample_probability=resample_probability,
                perturbation_factors=factors)
    return [sched._explore({"v": old, "other": "kept"})["v"] for _ in range(n)]


def test_explore_perturbs_numbers_by_the_factors_inside_the_domain():
    assert set(explore_many(uniform(0, 10), 5.0)) == {6.0, 4.0}
    assert set(explore_many(uniform(0, 10), 9.0)) == {10.0, 7.2}  # 10.8 is clipped to the bound
    assert set(explore_many(randint(1, 100), 10)) == {12, 8}
    assert all(isinstance(v, int) for v in explore_many(randint(1, 100), 10))
    assert set(explore_many(randn(0, 1), 1.0)) == {1.2, 0.8}


def test_explore_moves_list_values_to_a_neighbour_or_resamples():
    values = [16, 32, 64, 128]
    assert set(explore_many(values, 32)) == {16, 64}
    assert set(explore_many(values, 16)) == {16, 32}  # stays inside the list
    assert set(explore_many(values, 128)) == {64, 128}
    assert set(explore_many(values, 48)) <= set(values)  # not in the list: resampled
    assert set(explore_many(choice(values), 32)) == {16, 64}
    assert set(explore_many(values, 32, resample_probability=1.0)) == set(values)


def test_explore_resamples_domains_and_callables():
    drawn = explore_many(loguniform(1e-4, 1e-1), 0.01, resample_probability=1.0)
    assert len(set(drawn)) > 150 and all(1e-4 <= v <= 1e-1 for v in drawn)
    assert set(explore_many(lambda: 7, 3, resample_probability=1.0)) == {7}
    assert set(explore_many(lambda: 7, 5.0)) == {6.0, 4.0}  # numbers are perturbed by default
    assert set(explore_many(lambda: "new", "old")) == {"new"}  # other values are resampled


def test_nested_mutations_and_custom_explore_fn():
    def clamp(config):
        config["opt"]["lr"] = min(config["opt"]["lr"], 0.5)
        return config

    sched = pbt(hyperparam_mutations={"opt": {"lr": uniform(0, 1)}}, custom_explore_fn=clamp)
    out = sched._explore({"opt": {"lr": 0.45, "name": "sgd"}, "bs": 8})
    assert out["opt"]["lr"] in (pytest.approx(0.36), 0.5) and out["opt"]["name"] == "sgd" and out["bs"] == 8
    sched = pbt(hyperparam_mutations=None, custom_explore_fn=lambda c: {**c, "bs": c["bs"] * 2})
    assert sched._explore({"bs": 8}) == {"bs": 16}


def test_explore_does_not_change_the_donors_config():
    sched = pbt(hyperparam_mutations={"opt": {"lr": uniform(0, 1)}})
    donor = {"opt": {"lr": 0.5}}
    sched._explore(donor)
    assert donor == {"opt": {"lr": 0.5}}


def test_replaying_the_history_after_a_resume_does_not_repeat_the_lineage():
    sched = pbt(perturbation_interval=1)
    a, b = population(sched, 2)
    report(sched, a, 1, 1.0)
    first = report(sched, b, 1, 0.0)
    assert isinstance(first, Mutate) and len(b.lineage) == 1
    # A resumed experiment shows a fresh scheduler every recorded result again.
    replay = pbt(perturbation_interval=1, seed=1)
    for trial in (a, b):
        replay.on_trial_add(trial)
    report(replay, a, 1, 1.0)
    assert report(replay, b, 1, 0.0) == first
    assert len(b.lineage) == 1


def test_a_clone_counts_its_next_interval_from_the_donors_checkpoint():
    # b trains faster than a: at b's iteration 8, a (better) has its checkpoint at 4. b restarts from
    # that checkpoint, at iteration 5: its next chance to exploit is 4 + 4 = 8 on its new clock (as
    # Ray Tune, which takes the donor's perturbation time), not 8 + 4 = 12 on the clock it left.
    sched = pbt(perturbation_interval=4, quantile_fraction=0.5)
    a, b = population(sched, 2)
    assert report(sched, a, 4, 1.0) is CONTINUE
    a.checkpoint_iteration = 4
    first = report(sched, b, 8, 0.0)
    assert isinstance(first, Mutate) and first.checkpoint == "/exp/t0/checkpoint_000004"
    b.config = first.config  # what the controller does with the decision
    assert [report(sched, b, it, 0.0) for it in (5, 6, 7)] == [CONTINUE] * 3
    second = report(sched, b, 8, 0.0)  # the old code: CONTINUE, next chance at 12
    assert isinstance(second, Mutate)
    assert [entry["training_iteration"] for entry in b.lineage] == [8, 8]
    assert b.lineage[1]["old_config"] == first.config


async def test_no_exploit_is_recorded_on_a_result_that_ends_the_trial(storage):
    # stop= at iteration 8 and perturbation_interval=4: the exploit decided on a trial's last result
    # never runs (the stop wins), so its lineage must not record it. The old code did: the lineage's
    # last new_config was not the config the trial ended with.
    analysis = await simulate(storage, workers=4, num_samples=8, stop={"training_iteration": 8},
                              checkpoint_frequency=1,
                              scheduler=PopulationBasedTraining(perturbation_interval=4, quantile_fraction=0.5,
                                                                hyperparam_mutations={"x": randint(0, 16)}, seed=1))
    assert any(t.lineage for t in analysis.trials)
    for trial in analysis.trials:
        assert trial.iteration == 8
        assert all(step["training_iteration"] < 8 for step in trial.lineage), trial.lineage
        if trial.lineage:
            assert trial.config == trial.lineage[-1]["new_config"]


async def test_a_resumes_replay_records_no_exploit_on_a_finished_trials_last_result(storage):
    # The replay shows a fresh scheduler every recorded result again; a finished trial's last one
    # (where stop= ended it) must not look like a chance to exploit, as it did not in the run.
    def scheduler():
        return PopulationBasedTraining(perturbation_interval=4, quantile_fraction=0.5,
                                       hyperparam_mutations={"x": randint(0, 16)}, seed=1)

    analysis = await simulate(storage, workers=4, num_samples=8, stop={"training_iteration": 8},
                              checkpoint_frequency=1, scheduler=scheduler())
    lineages = {t.trial_id: list(t.lineage) for t in analysis.trials}
    replayed = scheduler()
    replayed.set_search_properties("loss", "min")  # what run() does
    for trial in analysis.trials:
        trial.ending = False  # as loaded from experiment.json by a resume
    await replay_history(replayed, analysis.trials)
    assert {t.trial_id: t.lineage for t in analysis.trials} == lineages


async def test_runs_seed_makes_an_unseeded_pbt_repeatable(tmp_path):
    # PBT without a seed of its own takes run()'s: the same seed gives the same exploits and
    # explores (the lineage), a run without one is free to differ.
    async def lineages(name: str, seed: int | None) -> dict[str, list]:
        analysis = await simulate(str(tmp_path / name), workers=4, num_samples=8, seed=seed, checkpoint_frequency=1,
                                  scheduler=PopulationBasedTraining(perturbation_interval=3, quantile_fraction=0.5,
                                                                    hyperparam_mutations={"x": randint(0, 16)}))
        return {t.trial_id: [(s["training_iteration"], s["new_config"]) for s in t.lineage] for t in analysis.trials}

    first = await lineages("a", 7)
    assert sum(map(len, first.values())) >= 4
    assert await lineages("b", 7) == first
    assert await lineages("c", 8) != first
