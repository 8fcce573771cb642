"""Issue 30: a new user's mistakes caught in the first second (items 7, 8, 10, 11, 12)."""

from __future__ import annotations

import os
import time

import pytest

import asynctune as at


def count_to_a_thousand(config):
    for step in range(1000):
        at.report(loss=1.0 / (step + 1))


# 7. A misspelt stop= key ---------------------------------------------------------------------

def test_7_a_misspelt_stop_key_ends_the_run_at_the_first_result(storage):
    started = time.monotonic()
    with pytest.raises(ValueError) as caught:
        at.run(count_to_a_thousand, metric="loss", mode="min", stop={"training_iteraton": 10},
               storage_path=storage, name="typo", verbose=0)
    message = str(caught.value)
    assert "'training_iteraton'" in message and "did you mean 'training_iteration'?" in message
    assert "loss" in message  # the keys reported are listed
    results = at.ExperimentAnalysis(os.path.join(storage, "typo")).trial_results("trial_00000")
    assert len(results) < 1000  # the old code trained all 1,000 iterations
    assert time.monotonic() - started < 60


def test_7_a_stop_key_reported_on_the_first_result_is_fine(storage):
    analysis = at.run(count_to_a_thousand, metric="loss", mode="min", stop={"training_iteration": 3},
                      storage_path=storage, verbose=0)
    assert analysis.trials[0].last_result["training_iteration"] == 3


# 8. A GPU asked for where there is none --------------------------------------------------------

def test_8_a_gpu_request_without_a_gpu_is_refused_before_anything_is_created(storage):
    from asynctune.core.gpu import probe_gpus

    if probe_gpus():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError) as caught:
        at.run(count_to_a_thousand, metric="loss", mode="min", resources_per_trial={"gpu": 1},
               storage_path=storage, verbose=2)
    message = str(caught.value)
    assert "resources_per_trial {'cpu': 1.0, 'gpu': 1.0" in message and "can never fit" in message
    assert 'pip install "asynctune[gpu]"' in message and "no GPU was found: " in message
    assert "\n" not in message  # one message
    assert not os.path.exists(storage)  # no experiment directory, no INTERRUPTED experiment
    assert caught.value.__cause__ is None and caught.value.__context__ is None


# 12. An unpicklable object in config ------------------------------------------------------------

def test_12_an_open_file_in_config_is_named_by_its_key_before_anything_is_created(storage, tmp_path):
    with open(tmp_path / "log.txt", "w") as log:
        with pytest.raises(ValueError) as caught:
            at.run(count_to_a_thousand, config={"lr": at.uniform(0, 1), "data": {"log": log}},
                   metric="loss", mode="min", storage_path=storage, verbose=0)
    message = str(caught.value)
    assert message.startswith("run: config['data']['log'] (a TextIOWrapper) cannot be pickled")
    assert "Create it inside the trainable" in message
    assert not os.path.exists(storage)


def test_12_picklable_configs_pass(storage):
    analysis = at.run(count_to_a_thousand, config={"f": lambda: 1, "n": [1, {"a": 2}]}, metric="loss", mode="min",
                      stop={"training_iteration": 1}, storage_path=storage, verbose=0)
    assert analysis.trials[0].last_result["training_iteration"] == 1


# 10. TensorBoard expected but not installed -------------------------------------------------------

_WITHOUT_TENSORBOARDX = """
import sys
sys.modules["tensorboardX"] = None  # an install without asynctune[tensorboard]
import asynctune as at

def train(config):
    at.report(loss=1.0)

for name in ("first", "second"):
    at.run(train, metric="loss", mode="min", storage_path=sys.argv[1], name=name, verbose=0)
try:
    at.run(train, metric="loss", mode="min", storage_path=sys.argv[1], name="asked", verbose=0, tensorboard=True)
except ImportError as exc:
    print("refused:", exc)
"""


def test_10_a_run_without_tensorboardx_says_so_once_and_tensorboard_true_is_refused_early(storage):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _WITHOUT_TENSORBOARDX, storage], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "TensorBoard" in line]
    assert warnings == ["asynctune: WARNING: no TensorBoard files are written: tensorboardX is not installed "
                        "(pip install 'asynctune[tensorboard]'); pass tensorboard=False to run() to say you do "
                        "not want them"], done.stderr
    assert "refused: run: tensorboard=True needs tensorboardX: pip install 'asynctune[tensorboard]'" in done.stdout
    assert not os.path.exists(os.path.join(storage, "asked"))  # refused before its directory was made
    assert not any(name.startswith("events.out") for name in os.listdir(os.path.join(storage, "first")))


# 11. `asynctune hosts check` without dependency warnings; whole status and decision cells --------

def test_11_hosts_check_prints_no_cryptography_deprecation_warnings():
    import subprocess
    import sys

    pytest.importorskip("asyncssh")
    done = subprocess.run([sys.executable, "-m", "asynctune.cli", "hosts", "check", "nohost.invalid"],
                          capture_output=True, text=True, timeout=120)
    assert "nohost.invalid" in done.stdout and "unreachable" in done.stdout
    assert "Warning" not in done.stderr and "deprecated" not in done.stderr, done.stderr


def test_11_the_console_keeps_status_and_decision_cells_whole_and_drops_hyperparameter_columns():
    import io

    from asynctune.reporting.console import ConsoleReporter

    space = at.Space({f"hyper_{i}": at.uniform(0, 1) for i in range(6)})
    out = io.StringIO()
    reporter = ConsoleReporter(metric="loss", mode="min", space=space, verbose=1, file=out)
    reporter.console.width = 100
    trials = []
    for i in range(3):
        trial = at.Trial(f"trial_{i:05d}", {f"hyper_{k}": 0.123456789 * (k + 1) for k in range(6)}, index=i,
                         status=at.Status.TERMINATED)
        trial.last_result = {"training_iteration": 4, "time_total_s": 12.3456, "loss": 0.987654}
        trials.append(trial)
    trials[0].status = at.Status.EARLY_STOPPED  # what the controller records for a scheduler's STOP
    reporter.on_trial_decision(trials[0], "STOP")
    reporter.console.print(reporter.table(trials))
    text = out.getvalue()
    assert "EARLY_STOPPED" in text and "early-stopped@4" in text and "trial_00002" in text
    assert "…" not in text  # no cell cut short
    assert "columns left out for width: hyper_1" in text and "hyper_0" in text
    assert max(len(line) for line in text.splitlines()) <= 100
