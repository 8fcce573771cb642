"""HyperOptSearch: hyperopt's own TPE behind asynctune's Searcher interface, with hyperopt's hp.*
spaces (nested conditional hp.choice trees) and asynctune's spaces; in-process and in real runs."""

from __future__ import annotations

import math
import sys

import cloudpickle
import numpy as np
import pytest

import asynctune as at
from asynctune.errors import SearchSpaceError
from asynctune.core.space import Space

hyperopt = pytest.importorskip("hyperopt")
hp = hyperopt.hp

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module


def conditional_space() -> dict:
    return {
        "optimizer": hp.choice("optimizer", [
            {"name": "sgd", "momentum": hp.uniform("momentum", 0.0, 0.99),
             "nesterov": hp.choice("nesterov", [True, False])},
            {"name": "adam", "beta": hp.loguniform("beta", math.log(0.5), math.log(0.999))},
        ]),
        "x": hp.uniform("x", -5, 5),
    }


def searcher_for(space=None, config=None, **kwargs) -> at.HyperOptSearch:
    searcher = at.HyperOptSearch(space, metric="loss", mode=kwargs.pop("mode", "min"), **kwargs)
    searcher.set_search_properties(None, None, Space(config or {}))
    return searcher


def test_conditional_hp_choice_tree_gives_only_the_chosen_branch_parameters():
    searcher = searcher_for(conditional_space(), config={"epochs": 3}, seed=0, n_initial_points=5)
    configs = [searcher.suggest(f"t{i}") for i in range(30)]
    names = {c["optimizer"]["name"] for c in configs}
    assert names == {"sgd", "adam"}
    for config in configs:
        assert config["epochs"] == 3  # run()'s constants are kept
        if config["optimizer"]["name"] == "sgd":
            assert set(config["optimizer"]) == {"name", "momentum", "nesterov"}
            assert 0 <= config["optimizer"]["momentum"] <= 0.99
        else:
            assert set(config["optimizer"]) == {"name", "beta"}
            assert 0.5 <= config["optimizer"]["beta"] <= 0.999


def test_several_asks_before_any_tell_give_distinct_configs_and_tells_arrive_in_any_order():
    searcher = searcher_for(conditional_space(), seed=1, n_initial_points=2)
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(4)}
    assert len({c["x"] for c in configs.values()}) == 4
    for trial_id in ("t2", "t0", "t3", "t1"):
        searcher.on_trial_complete(trial_id, {"loss": configs[trial_id]["x"] ** 2})
    assert len([t for t in searcher.trials.trials if t["result"].get("status") == "ok"]) == 4
    assert searcher.suggest("t4") is not None  # the model phase, with every trial told


def test_one_trial_at_a_time_it_proposes_exactly_what_hyperopts_own_fmin_does():
    """The same seed gives the same sequence as hyperopt.fmin with tpe.suggest: it is hyperopt's
    TPE (its startup draws, then its model), not a look-alike."""
    objective = lambda x: (x - 3) ** 2  # noqa: E731
    trials = hyperopt.Trials()
    hyperopt.fmin(objective, hp.uniform("x", -10, 10), algo=hyperopt.tpe.suggest, max_evals=30, trials=trials,
                  rstate=np.random.default_rng(5), show_progressbar=False)
    searcher = searcher_for({"x": hp.uniform("x", -10, 10)}, seed=5, n_initial_points=20)
    losses = []
    for i in range(30):
        config = searcher.suggest(f"t{i}")
        losses.append(objective(config["x"]))
        searcher.on_trial_complete(f"t{i}", {"loss": losses[-1]})
    assert losses == trials.losses()


def test_mode_max_maximises_and_failed_or_nan_trials_are_not_learned_from():
    searcher = searcher_for({"x": hp.uniform("x", 0, 1)}, mode="max", seed=0, n_initial_points=1)
    for trial_id in ("a", "b", "c"):
        searcher.suggest(trial_id)
    searcher.on_trial_complete("a", {"loss": 0.5})
    searcher.on_trial_complete("b", {"loss": float("nan")})
    searcher.on_trial_complete("c", None, error=True)
    assert searcher.trials.losses() == [-0.5]  # hyperopt minimises: mode="max" is told the negation
    assert searcher._live == {}


def test_points_to_evaluate_come_first_by_value_or_index_and_labels_left_out_are_drawn():
    points = [{"optimizer": 1, "beta": 0.9, "x": 1.0}, {"optimizer": 0, "momentum": 0.5, "nesterov": True, "x": 2.0}]
    searcher = searcher_for(conditional_space(), seed=0, points_to_evaluate=points)
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert first == {"optimizer": {"name": "adam", "beta": 0.9}, "x": 1.0}
    assert second == {"optimizer": {"name": "sgd", "momentum": 0.5, "nesterov": True}, "x": 2.0}
    partial = searcher_for({"a": hp.choice("a", ["relu", "tanh"]), "b": hp.uniform("b", 0, 1)},
                           points_to_evaluate=[{"a": "tanh"}], seed=0)
    config = partial.suggest("c")
    assert config["a"] == "tanh" and 0 <= config["b"] <= 1


def test_points_to_evaluate_on_asynctunes_space_are_keyed_by_config_keys():
    config = {"lr": at.loguniform(1e-4, 1e-1), "model": {"depth": at.randint(1, 8)}, "act": at.choice(["relu", "tanh"])}
    searcher = searcher_for(config=config, seed=0,
                            points_to_evaluate=[{"lr": 0.01, "model/depth": 3, "act": "tanh"}])
    assert searcher.suggest("a") == {"lr": 0.01, "model": {"depth": 3}, "act": "tanh"}


def test_bad_points_to_evaluate_are_named():
    with pytest.raises(ValueError, match="keys \\['y'\\] that are no labels of the space"):
        searcher_for({"x": hp.uniform("x", 0, 1)}, points_to_evaluate=[{"y": 1}])
    searcher = searcher_for({"a": hp.choice("a", ["relu", "tanh"])}, points_to_evaluate=[{"a": "gelu"}])
    with pytest.raises(ValueError, match="'gelu' is not a constant option of hp.choice\\('a'"):
        searcher.suggest("t")


def test_points_outside_asynctunes_domains_fail_before_any_trial():
    # Before, {"model/depth": 30} ran as it was, though every other searcher refuses it.
    config = {"lr": at.loguniform(1e-4, 1e-1), "model": {"depth": at.randint(1, 8)}}
    with pytest.raises(ValueError, match=r"points_to_evaluate value 30 at 'model/depth' is not a number in \[1, 7\]"):
        searcher_for(config=config, points_to_evaluate=[{"model/depth": 30}])


def test_quantized_and_log_integer_domains_stay_on_asynctunes_grid_inside_the_bounds():
    # hp.quniform rounds to multiples of q from 0 and may leave the bounds: quniform(0.1, 1, 0.25)
    # gave 0.0, qrandint(1, 10, 3) gave 0, 3, 6, 9 (asynctune's grid is 1, 4, 7, 10), qloguniform(1,
    # 100, 5) gave 0.0. TPE's model phase is included (n_initial_points=5 of 40).
    config = {"qu": at.quniform(0.1, 1.0, 0.25), "qri": at.qrandint(1, 10, 3), "qlu": at.qloguniform(1, 100, 5),
              "qlri": at.qlograndint(3, 50, 4), "lri": at.lograndint(1, 5)}
    allowed = {"qu": {0.25, 0.5, 0.75, 1.0}, "qri": {1, 4, 7, 10}, "qlu": {5.0 * i for i in range(1, 21)},
               "qlri": set(range(3, 51, 4)), "lri": {1, 2, 3, 4}}
    searcher = searcher_for(config=config, seed=0, n_initial_points=5)
    seen: dict[str, set] = {key: set() for key in config}
    for i in range(40):
        suggested = searcher.suggest(f"t{i}")
        for key, value in suggested.items():
            assert value in allowed[key] and type(value) is type(next(iter(allowed[key]))), (key, value)
            seen[key].add(value)
        searcher.on_trial_complete(f"t{i}", {"loss": suggested["qu"] + suggested["qri"] / 10})
    assert seen["qri"] == allowed["qri"] and seen["lri"] == allowed["lri"]  # every value, the ends too


def test_lists_in_the_space_stay_lists_as_with_every_other_searcher():
    # hyperopt evaluates a list to a tuple: before, config["layers"] was (3, {"w": 0.4}).
    config = {"layers": [at.randint(1, 4), {"w": at.uniform(0, 1)}], "ch": at.choice([[at.uniform(0, 1), 2], "x"])}
    searcher = searcher_for(config=config, seed=0, points_to_evaluate=[{"ch": 0}])
    suggested = searcher.suggest("a")
    assert type(suggested["layers"]) is list and type(suggested["ch"]) is list
    assert 1 <= suggested["layers"][0] < 4 and suggested["ch"][1] == 2


def test_dict_keys_keep_the_order_of_the_space():
    # hyperopt sorts a dict's keys: before, {"opt": {"name": ..., "beta": ...}} came back as {"beta", "name"}.
    config = {"z": at.uniform(0, 1), "opt": at.choice([{"name": "sgd", "momentum": at.uniform(0, 1)},
                                                     {"name": "adam", "beta": at.uniform(0.5, 0.9)}]),
              "const": {"y": 1, "b": [{"k": 2, "a": 1}]}, "a": at.randint(0, 3)}
    searcher = searcher_for(config=config, seed=0)
    for trial in range(6):
        suggested = searcher.suggest(f"t{trial}")
        assert list(suggested) == ["z", "opt", "const", "a"]
        assert list(suggested["opt"])[0] == "name" and list(suggested["const"]) == ["y", "b"]
        assert list(suggested["const"]["b"][0]) == ["k", "a"]


def test_save_and_restore_continue_with_the_same_suggestions(tmp_path):
    searcher = searcher_for(conditional_space(), seed=7, n_initial_points=3)
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"loss": config["x"] ** 2})
    live = searcher.suggest("t6")  # asked, not told: a resumed experiment still waits for it
    path = str(tmp_path / "searcher.pkl")
    searcher.save(path)
    restored = at.HyperOptSearch(conditional_space(), metric="loss", mode="min")
    restored.restore(path)
    assert restored._live == searcher._live and len(restored.trials.trials) == 7
    assert [restored.suggest(f"n{i}") for i in range(3)] == [searcher.suggest(f"n{i}") for i in range(3)]
    restored.on_trial_complete("t6", {"loss": live["x"] ** 2})
    assert "t6" not in restored._live


def test_the_same_seed_gives_the_same_suggestions():
    runs = []
    for _ in range(2):
        searcher = searcher_for(conditional_space(), seed=11, n_initial_points=3)
        configs = []
        for i in range(8):
            configs.append(searcher.suggest(f"t{i}"))
            searcher.on_trial_complete(f"t{i}", {"loss": configs[-1]["x"] ** 2})
        runs.append(configs)
    assert runs[0] == runs[1]


def test_asynctune_space_is_converted_with_choice_of_dicts_integers_and_log_scales():
    config = {"lr": at.loguniform(1e-4, 1e-1), "layers": at.randint(1, 4), "units": at.qrandint(8, 64, 8),
              "noise": at.randn(0, 1), "opt": at.choice([{"name": "sgd", "m": at.uniform(0, 1)}, "adam"]),
              "fixed": 5}
    searcher = searcher_for(config=config, seed=0, n_initial_points=50)
    configs = [searcher.suggest(f"t{i}") for i in range(40)]
    assert all(1e-4 <= c["lr"] <= 1e-1 for c in configs)
    assert {c["layers"] for c in configs} == {1, 2, 3}
    assert all(isinstance(c["units"], int) and c["units"] % 8 == 0 and 8 <= c["units"] <= 64 for c in configs)
    assert all(c["fixed"] == 5 for c in configs)
    assert {c["opt"] if isinstance(c["opt"], str) else c["opt"]["name"] for c in configs} == {"sgd", "adam"}
    assert all(0 <= c["opt"]["m"] <= 1 for c in configs if isinstance(c["opt"], dict))


@pytest.mark.parametrize("config, message", [
    ({"x": at.grid_search([1, 2])}, "cannot search grid_search"),
    ({"x": at.sample_from(lambda spec: 1)}, "cannot search sample_from"),
], ids=["grid_search", "sample_from"])
def test_domains_hyperopt_cannot_search_are_refused_before_any_trial(config, message):
    with pytest.raises(SearchSpaceError, match=message):
        searcher_for(config=config)


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="n_initial_points"):
        at.HyperOptSearch(n_initial_points=0)
    with pytest.raises(ValueError, match="gamma"):
        at.HyperOptSearch(gamma=1.5)
    with pytest.raises(ValueError, match="seed"):
        at.HyperOptSearch(seed="x")
    with pytest.raises(ValueError, match="points_to_evaluate"):
        at.HyperOptSearch(points_to_evaluate={"x": 1})
    with pytest.raises(SearchSpaceError, match="takes a hyperopt space"):
        at.HyperOptSearch({"x": at.uniform(0, 1)})
    with pytest.raises(SearchSpaceError, match="only constants, but has domains at config\\['x'\\]"):
        searcher_for({"y": hp.uniform("y", 0, 1)}, config={"x": at.uniform(0, 1)})
    with pytest.raises(ValueError, match="metric is not set"):
        at.HyperOptSearch({"y": hp.uniform("y", 0, 1)}).set_search_properties(None, None, Space({}))


def trainable(config: dict) -> None:
    x = config["x"] if config["optimizer"]["name"] == "sgd" else config["x"] + 1
    for step in range(2):
        at.report(loss=x ** 2 / (step + 1))


def test_a_real_run_with_a_conditional_space_and_two_trials_at_once(storage):
    analysis = at.run(trainable, search_alg=at.HyperOptSearch(conditional_space(), seed=0, n_initial_points=3),
                      metric="loss", mode="min", num_samples=6, max_concurrent_trials=2, storage_path=storage,
                      verbose=0)
    assert len(analysis.trials) == 6
    assert all(t.status is at.Status.TERMINATED and t.num_results == 2 for t in analysis.trials)
    assert {t.config["optimizer"]["name"] for t in analysis.trials} <= {"sgd", "adam"}
    assert analysis.best_result["loss"] == min(r["loss"] for t in analysis.trials
                                               for r in analysis.trial_results(t.trial_id))
