"""Resuming an experiment whose driver died: rebuild the trial table from what is on disk.

What survives a killed driver, and what each part of the state is rebuilt from:
- the run's arguments, trainable, searcher, scheduler and executor as they were at the start:
  run_spec.pkl (cloudpickle, written before the first trial);
- the trial table: journal.jsonl (every trial's life, appended and flushed as it changes);
- every result: each trial's result.jsonl; every checkpoint: its checkpoint_* directories;
- the searcher: searcher_state.pkl, saved after every suggestion and every completion;
- the scheduler: replayed, by showing a fresh one every recorded result in order.
Trials that were running restart from their newest complete checkpoint; results they reported
after it move to result.rewound.jsonl, since the restarted trial reports them again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from .errors import UnsafeFileError
from .safe_files import load_pickle_private, open_private
from .storage import (
    EXPERIMENT_FILE, RUN_SPEC_FILE, latest_checkpoint, read_journal, read_results,
)
from .trial import Status, Trial


@dataclass
class ResumeState:
    experiment_dir: str
    run_kwargs: dict[str, Any]
    trainable: Any
    status: str
    time_used_s: float
    trials: list[Trial] = field(default_factory=list)


def save_run_spec(experiment_dir: str, run_kwargs: dict[str, Any], trainable_blob: bytes,
                  kwargs_blob: bytes | None) -> None:
    """Keep run()'s arguments (fresh searcher and scheduler included) for a later resume.

    `kwargs_blob` is the arguments pickled before anything used them; None if they could not
    be pickled, in which case callbacks and executor are left out (resume() takes them again)."""
    if kwargs_blob is None:
        keep = {k: v for k, v in run_kwargs.items() if k not in ("callbacks", "executor")}
        kwargs_blob = cloudpickle.dumps(keep)
    data = cloudpickle.dumps({"run_kwargs": kwargs_blob, "trainable": trainable_blob})
    tmp = os.path.join(experiment_dir, RUN_SPEC_FILE + ".tmp")
    with open_private(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(experiment_dir, RUN_SPEC_FILE))


def load_resume_state(experiment_dir: str) -> ResumeState:
    """Read an experiment directory for resuming; clear errors for what is missing or corrupt."""
    experiment_dir = os.path.abspath(os.path.expanduser(experiment_dir))
    if not os.path.isdir(experiment_dir):
        raise ValueError(f"cannot resume {experiment_dir}: no such directory")
    spec_path = os.path.join(experiment_dir, RUN_SPEC_FILE)
    try:
        spec = load_pickle_private(spec_path, cloudpickle.load)
        trainable = cloudpickle.loads(spec["trainable"])
    except FileNotFoundError:
        raise ValueError(f"cannot resume {experiment_dir}: it has no {RUN_SPEC_FILE} "
                         "(not an asynctune experiment, or its driver died before the first trial)") from None
    except UnsafeFileError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot resume {experiment_dir}: {RUN_SPEC_FILE} is unreadable "
                         f"({type(exc).__name__}: {exc})") from exc
    status, time_used = "UNKNOWN", 0.0
    try:
        with open(os.path.join(experiment_dir, EXPERIMENT_FILE)) as f:
            snapshot = json.load(f)
        status, time_used = snapshot.get("status", "UNKNOWN"), float(snapshot.get("time_used_s", 0.0))
    except (OSError, ValueError):
        pass  # a missing or torn snapshot is fine: the journal is the source of truth
    kwargs = cloudpickle.loads(spec["run_kwargs"])
    trials = _trials_from_journal(experiment_dir, kwargs.get("metric"), kwargs.get("mode"))
    return ResumeState(experiment_dir, kwargs, trainable, status, time_used, trials)


def _trials_from_journal(experiment_dir: str, metric: str | None, mode: str | None) -> list[Trial]:
    trials: dict[str, Trial] = {}
    for event in read_journal(experiment_dir):
        trial_id = event.get("trial_id")
        if not trial_id:
            continue
        trial = trials.get(trial_id)
        if trial is None:
            trial = trials[trial_id] = Trial(trial_id=trial_id, config=event.get("config", {}),
                                             index=int(event.get("index", len(trials))),
                                             path=os.path.join(experiment_dir, trial_id))
        trial.config = event.get("config", trial.config)
        trial.resources = event.get("resources", trial.resources) or {}
        trial.status = Status(event.get("status", trial.status.value))
        trial.num_failures = int(event.get("num_failures", 0))
        trial.error = event.get("error")
    for trial in trials.values():
        _restore_trial(trial, metric, mode)
    return sorted(trials.values(), key=lambda t: t.index)


def _restore_trial(trial: Trial, metric: str | None, mode: str | None) -> None:
    recorded = read_results(trial.path)
    last_iteration = max((int(r.get("training_iteration", 0)) for r in recorded), default=0)
    newest = latest_checkpoint(trial.path, max_iteration=last_iteration)
    if newest is not None:
        trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_total = newest
    if trial.status in (Status.RUNNING, Status.PENDING, Status.PAUSED):
        # It will run again from its newest checkpoint: what it reported after that comes again,
        # and moves to result.rewound.jsonl when it does (attempt.py); until then it counts.
        trial.status = Status.PAUSED if trial.status is Status.PAUSED else Status.PENDING
        trial.restore_checkpoint = trial.checkpoint
        trial.restore_iteration = trial.checkpoint_iteration if newest else 0
        trial.restore_time_total = trial.checkpoint_time_total if newest else 0.0
    trial.num_results = len(recorded)
    trial.last_result = recorded[-1] if recorded else None
    for result in recorded:
        trial.update_best(metric, mode, result)
    if recorded:
        trial.start_time = recorded[0].get("timestamp")


def recorded_history(trials: list[Trial]) -> Iterator[tuple[Trial, dict[str, Any]]]:
    """Every recorded result of every trial, in the order they were reported; of a trial that
    will restart from a checkpoint, those up to it (it reports the others again)."""
    history = [(r.get("timestamp", 0.0), t.index, i, t, r)
               for t in trials for i, r in enumerate(read_results(t.path)) if _kept(t, r)]
    history.sort(key=lambda item: item[:3])
    for _, _, _, trial, result in history:
        yield trial, result


def _kept(trial: Trial, result: dict[str, Any]) -> bool:
    if trial.status.is_finished:
        return True
    return int(result.get("training_iteration", 0)) <= trial.restore_iteration
