"""Every name in an experiment directory, and the paths made of them: only the store spells them.

An experiment directory holds experiment.json, the journal, the decisions log and one directory
per trial (result.jsonl, progress.csv, params, stdout.txt/stderr.txt, error.txt, monitor.jsonl,
checkpoint_<iteration>/...). Code elsewhere asks here for a path instead of joining a literal, so
the layout can change in one place (scripts/store_ownership.py counts the modules that do not).

    >>> checkpoint_name(12), checkpoint_iteration("checkpoint_000012")
    ('checkpoint_000012', 12)
    >>> error_file("/runs/exp/trial_00003")
    '/runs/exp/trial_00003/error.txt'
"""

from __future__ import annotations

import os
import re

# At the top of an experiment directory.
EXPERIMENT_FILE = "experiment.json"
JOURNAL_FILE = "journal.jsonl"
RUN_SPEC_FILE = "run_spec.pkl"
SEARCHER_STATE_FILE = "searcher_state.pkl"
DECISIONS_FILE = "decisions.jsonl"
RESULTS_FILE = "results.jsonl"  # recording="consolidated": every trial's results, at the top
RESULTS_REWOUND_FILE = "results.rewound.jsonl"  # and those a restarted trial reports again
OPTUNA_JOURNAL_FILE = "optuna_journal.log"  # OptunaSearch's study (Optuna's journal file storage)

# In each trial's directory.
RESULT_FILE = "result.jsonl"
REWOUND_FILE = "result.rewound.jsonl"
PROGRESS_FILE = "progress.csv"
PARAMS_FILE = "params.json"
PARAMS_PICKLE_FILE = "params.pkl"
ERROR_FILE = "error.txt"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
LOG_FILES = (STDOUT_FILE, STDERR_FILE)  # what a trial printed, kept for the user
MONITOR_FILE = "monitor.jsonl"  # one line per resource sample while the trial ran
TENSORBOARD_PREFIX = "events.out.tfevents."
CHECKPOINT_PREFIX = "checkpoint_"
RESTARTED_DIR = "restarted"  # restarted/<n>/: the checkpoints of an attempt restarted from scratch
CHECKPOINT_DATA = "checkpoint.pkl"  # a dict checkpoint, pickled inside its directory
CHECKPOINT_META = ".asynctune.json"  # in a checkpoint: the iteration and time it was taken at
_CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)")


def experiment_file(experiment_dir: str) -> str:
    """`<experiment_dir>/experiment.json`, the experiment's state."""
    return os.path.join(experiment_dir, EXPERIMENT_FILE)


def is_experiment_dir(directory: str) -> bool:
    """Whether `directory` holds an experiment.json (an experiment that got as far as its first state)."""
    return os.path.isfile(experiment_file(directory))


def run_spec_file(experiment_dir: str) -> str:
    """`<experiment_dir>/run_spec.pkl`: what `asynctune resume` needs to run the experiment again."""
    return os.path.join(experiment_dir, RUN_SPEC_FILE)


def results_file(experiment_dir: str) -> str:
    """Every trial's results in one file at the top (recording="consolidated")."""
    return os.path.join(experiment_dir, RESULTS_FILE)


def decisions_file(experiment_dir: str) -> str:
    """`<experiment_dir>/decisions.jsonl`: every scheduler decision, one line each."""
    return os.path.join(experiment_dir, DECISIONS_FILE)


def optuna_journal_file(experiment_dir: str) -> str:
    """Where OptunaSearch keeps its study in the experiment directory."""
    return os.path.join(experiment_dir, OPTUNA_JOURNAL_FILE)


def trial_dir(experiment_dir: str, trial_id: str) -> str:
    """A trial's directory (`trial_id` must be a plain name: see paths.check_name)."""
    return os.path.join(experiment_dir, trial_id)


def result_file(trial_dir: str) -> str:
    """The trial's results, one JSON line each (recording="files" or "batched")."""
    return os.path.join(trial_dir, RESULT_FILE)


def rewound_file(trial_dir: str) -> str:
    """The results a restarted trial reported again, moved out of its result.jsonl."""
    return os.path.join(trial_dir, REWOUND_FILE)


def error_file(trial_dir: str) -> str:
    """The traceback of a trial that failed."""
    return os.path.join(trial_dir, ERROR_FILE)


def stdout_file(trial_dir: str) -> str:
    """What the trial printed to standard output."""
    return os.path.join(trial_dir, STDOUT_FILE)


def stderr_file(trial_dir: str) -> str:
    """What the trial printed to standard error."""
    return os.path.join(trial_dir, STDERR_FILE)


def monitor_file(trial_dir: str) -> str:
    """The trial's resource samples (memory, CPU, GPUs), one JSON line each."""
    return os.path.join(trial_dir, MONITOR_FILE)


def tensorboard_file(trial_dir: str, stamp: int, host: str, pid: int, serial: int) -> str:
    """A TensorBoard events file of the trial, named as TensorBoard expects; unique per process
    and `serial`, so a trial that starts again never overwrites its old file. TensorBoard reads
    a run's files in name order: the serial is padded so that files made in one second sort in
    the order they were made (unpadded, serial 10 sorted before 9 and steps went back)."""
    return os.path.join(trial_dir, f"{TENSORBOARD_PREFIX}{stamp:010d}.{host}.{pid}.{serial:010d}.asynctune")


def checkpoint_name(iteration: int) -> str:
    """The name of the checkpoint taken with result number `iteration`: checkpoint_000012."""
    return f"{CHECKPOINT_PREFIX}{iteration:06d}"


def checkpoint_dir(trial_dir: str, iteration: int) -> str:
    """The trial's checkpoint directory for result number `iteration`."""
    return os.path.join(trial_dir, checkpoint_name(iteration))


def clone_name(num_results: int) -> str:
    """The name of a checkpoint PBT copies from a donor into a trial that had `num_results` results."""
    return f"{CHECKPOINT_PREFIX}clone_{num_results:06d}"


def is_checkpoint_name(name: str) -> bool:
    """Whether `name` is one of a trial's checkpoints (its own or a clone)."""
    return name.startswith(CHECKPOINT_PREFIX)


def checkpoint_iteration(name: str) -> int | None:
    """The iteration of a trial's own checkpoint named `name` (checkpoint_000012 -> 12), else None."""
    match = _CHECKPOINT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def checkpoint_meta(checkpoint_dir: str) -> str:
    """The file inside a checkpoint that says which iteration and time it was taken at."""
    return os.path.join(checkpoint_dir, CHECKPOINT_META)


def checkpoint_data(checkpoint_dir: str) -> str:
    """The pickle of a dict checkpoint inside its directory."""
    return os.path.join(checkpoint_dir, CHECKPOINT_DATA)
