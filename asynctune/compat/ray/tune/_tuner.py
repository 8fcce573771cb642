"""Ray's `tune.Tuner`: its configs become one `asynctune.run()` call; its results a `ResultGrid`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import asynctune as _at
from asynctune.api import DEFAULT_STORAGE_PATH
from asynctune.store.layout import RUN_SPEC_FILE, trial_ids
from asynctune.store.names import run_spec_file

from .._runtime import local_executor, log_to_driver
from .._unsupported import unsupported
from ._configs import RunConfig, TuneConfig
from ._results import ResultGrid
from ._retention import KeepBestCheckpoints
from ._trial_output import TrialOutputEcho
from ._trainables import (
    changes_to_trial_directory, check_trainable, flat_results, in_trial_directory, report_returned, resources_of,
    to_asynctune_resources,
)
from .callback import adapt_callbacks
from .progress_reporter import ReporterCallback
from .stopper import to_stopper

logger = logging.getLogger(__name__)


class Tuner:
    """Ray's `tune.Tuner`: `Tuner(trainable, param_space=..., tune_config=..., run_config=...).fit()`.

    Example:
        >>> tuner = tune.Tuner(train, param_space={"lr": tune.loguniform(1e-4, 1e-1)},
        ...                    tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=10),
        ...                    run_config=tune.RunConfig(stop={"training_iteration": 20}))
        >>> best = tuner.fit().get_best_result()
        >>> best.config, best.metrics["loss"]

    `fit()` runs `asynctune.run()` with the configs mapped onto its arguments (see
    docs/migrating_from_ray.md). As in Ray, failed trials do not make it raise: look at
    `ResultGrid.errors`.
    """

    def __init__(self, trainable: Any = None, *, param_space: Mapping[str, Any] | None = None,
                 tune_config: TuneConfig | None = None, run_config: RunConfig | None = None,
                 _restore_path: str | None = None, _errored: str = "keep") -> None:
        if _restore_path is None:
            check_trainable(trainable)
        if param_space is not None and not isinstance(param_space, Mapping):
            raise ValueError(f"Tuner: param_space must be a dict, got {type(param_space).__name__}")
        for name, value, kind in (("tune_config", tune_config, TuneConfig), ("run_config", run_config, RunConfig)):
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"Tuner: {name} must be a tune.{kind.__name__}, got {value!r}")
        self.param_space = dict(param_space or {})
        self.tune_config = tune_config or TuneConfig()
        self.trainable = flat_results(report_returned(trainable))
        if changes_to_trial_directory(self.tune_config.chdir_to_trial_dir):
            self.trainable = in_trial_directory(self.trainable)
        self.run_config = run_config or RunConfig()
        self._restore_path, self._errored = _restore_path, _errored
        self._resume_with_call = False  # on a restore: this object's configs replace the saved callbacks and budget
        self._experiment_dir: str | None = _restore_path

    def fit(self) -> ResultGrid:
        where = _ExperimentDir()
        if self._restore_path is not None:
            # tune.run(resume=...) brings this call's callbacks, reporting and time budget, as in Ray;
            # Tuner.restore keeps the first run's (Ray pickles them with the experiment).
            callbacks, _, verbose = self._callbacks(where) if self._resume_with_call else (None, None, None)
            budget = self.tune_config.time_budget_s if self._resume_with_call else None
            return ResultGrid(_at.resume(self._restore_path, executor=local_executor(), trainable=self.trainable,
                                         errored=self._errored, callbacks=callbacks, verbose=verbose,
                                         time_budget_s=budget))
        try:
            analysis = _at.run(self.trainable, **self._run_options(where))
        except _at.TrialFailed:
            if self.run_config.failure_config.fail_fast == "raise" or where.path is None:  # type: ignore[union-attr]
                raise
            analysis = _at.ExperimentAnalysis(where.path)  # fail_fast=True: Ray ends the run without raising
        self._experiment_dir = analysis.experiment_dir
        return ResultGrid(analysis)

    def get_results(self) -> ResultGrid:
        if self._experiment_dir is None:
            raise RuntimeError("Tuner.get_results: nothing has run yet; call fit() first")
        return ResultGrid(_at.ExperimentAnalysis(self._experiment_dir))

    @classmethod
    def restore(cls, path: str, trainable: Any = None, resume_unfinished: bool = True, resume_errored: bool = False,
                restart_errored: bool = False, param_space: Mapping[str, Any] | None = None,
                storage_filesystem: Any = None, **_: Any) -> Tuner:
        """Continue an interrupted experiment (asynctune.resume): finished trials stay finished,
        unfinished ones go on from their latest checkpoint; with `resume_errored` failed ones too
        (with `restart_errored` from the start), also in an experiment that had finished.
        `trainable`, when given, runs instead of the one saved (a fixed bug); the space was
        saved with the experiment, so `param_space` is not needed."""
        if resume_errored and restart_errored:
            raise ValueError("Tuner.restore: pass resume_errored=True (from the newest checkpoint) or "
                             "restart_errored=True (from the start), not both")
        if not resume_unfinished:
            unsupported("Tuner.restore(resume_unfinished=False)", "read the results with Tuner(...).get_results() or "
                        "asynctune.ExperimentAnalysis(path)")
        if storage_filesystem is not None:
            unsupported("Tuner.restore(storage_filesystem=...)", "give a local path")
        path = os.path.abspath(os.path.expanduser(path))
        if not cls.can_restore(path):
            raise ValueError(f"Tuner.restore: {path} is not an asynctune experiment directory (no {RUN_SPEC_FILE})")
        if trainable is not None:
            check_trainable(trainable)
        errored = "restart" if restart_errored else "resume" if resume_errored else "keep"
        return cls(trainable, _restore_path=path, _errored=errored)

    @classmethod
    def can_restore(cls, path: str, storage_filesystem: Any = None) -> bool:
        return os.path.exists(run_spec_file(os.path.expanduser(path)))

    def _run_options(self, where: _ExperimentDir) -> dict[str, Any]:
        tc, rc = self.tune_config, self.run_config
        cc, fc = rc.checkpoint_config, rc.failure_config
        assert cc is not None and fc is not None  # RunConfig fills them in
        callbacks, keep, verbose = self._callbacks(where)
        options = dict(
            config=self.param_space, num_samples=tc.num_samples, metric=tc.metric, mode=tc.mode,
            stop=to_stopper(rc.stop), search_alg=tc.search_alg, scheduler=tc.scheduler, executor=local_executor(),
            resources_per_trial=to_asynctune_resources(resources_of(self.trainable)),
            max_concurrent_trials=tc.max_concurrent_trials, time_budget_s=tc.time_budget_s,
            storage_path=rc.storage_path, name=_free_name(rc.storage_path, rc.name), callbacks=callbacks, max_failures=fc.max_failures,
            fail_fast=bool(fc.fail_fast), raise_on_failed_trial="never",
            checkpoint_frequency=cc.checkpoint_frequency, checkpoint_at_end=bool(cc.checkpoint_at_end),
            keep_checkpoints_num=keep,
        )
        if verbose is not None:
            options["verbose"] = verbose
        return options

    def _callbacks(self, where: _ExperimentDir) -> tuple[list[Any], int | None, int | None]:
        """The run's callbacks from the configs, the checkpoints to keep by recency (None when
        KeepBestCheckpoints keeps them by score), and asynctune's verbosity (None: its default)."""
        tc, rc = self.tune_config, self.run_config
        cc = rc.checkpoint_config
        assert cc is not None  # RunConfig fills it in
        callbacks = [where, *adapt_callbacks(rc.callbacks, stop=rc.stop, num_samples=tc.num_samples)]
        if log_to_driver():  # Ray shows what trials print in the driver's console
            callbacks.append(TrialOutputEcho())
        keep = cc.num_to_keep
        if cc.checkpoint_score_attribute is not None and keep is not None:
            callbacks.append(KeepBestCheckpoints(keep, cc.checkpoint_score_attribute, cc.checkpoint_score_order))
            keep = None
        verbose = rc.verbose
        if rc.progress_reporter is not None and rc.verbose != 0:  # Ray's reporter, instead of asynctune's table
            callbacks.append(ReporterCallback(rc.progress_reporter, metric=tc.metric, mode=tc.mode,
                                              num_samples=tc.num_samples))
            verbose = 0
        return callbacks, keep, verbose


class _ExperimentDir(_at.Callback):
    """Learns the experiment's directory, for the results of a run that ended by fail_fast."""

    path: str | None = None

    def on_experiment_start(self, experiment_dir: str, trials: Any) -> None:
        self.path = experiment_dir


def _free_name(storage_path: str | None, name: str | None) -> str | None:
    """Ray runs a script again under the same RunConfig(name=...); asynctune keeps one experiment
    per directory, so a second run goes to name_2, name_3, ... (Tuner.restore continues one)."""
    if name is None:
        return None
    root = os.path.abspath(os.path.expanduser(storage_path or DEFAULT_STORAGE_PATH))
    candidate, number = name, 1
    while trial_ids(os.path.join(root, candidate)):
        number += 1
        candidate = f"{name}_{number}"
    if candidate != name:
        logger.warning("RunConfig(name=%r): %s holds an earlier experiment; this one goes to %s", name,
                       os.path.join(root, name), os.path.join(root, candidate))
    return candidate
