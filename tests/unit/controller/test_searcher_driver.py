"""SearcherDriver: when a searcher's state is saved (real searchers, saves counted)."""

from __future__ import annotations

import asyncio

import asynctune as at
from asynctune.controller.searcher_driver import SearcherDriver
from asynctune.core.space import Space


def _ready(searcher):
    searcher.set_search_properties("loss", "min", Space({"x": at.uniform(0, 1)}), seed=0)
    searcher.max_trials(4)
    return searcher


def _one_trial(driver: SearcherDriver) -> None:
    asyncio.run(driver.suggest("trial_00000"))
    driver.added()
    driver.ended("trial_00000", {"loss": 1.0}, False)


def test_a_model_based_searcher_is_saved_after_every_suggestion_and_completion():
    saved = []
    driver = SearcherDriver(_ready(at.TPESearch(seed=0)), saved.append)
    driver.open()
    _one_trial(driver)
    assert len(saved) == 2
    driver.close()
    assert len(saved) == 2  # nothing new to save at the end


def test_random_search_is_saved_once_at_the_end_as_a_resume_replays_it():
    searcher = _ready(at.BasicVariantSearch(seed=0))
    assert searcher.replayable
    saved = []
    driver = SearcherDriver(searcher, saved.append)
    driver.open()
    _one_trial(driver)
    assert saved == []  # no file per trial
    driver.close()
    assert saved == [searcher]
