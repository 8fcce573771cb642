"""examples/subprocess_executor.py, the executor docs/executors.md is written around, runs real
experiments: real worker processes, a trial that raises, one a scheduler stops, one whose
worker is killed, and a worker that cannot start."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

import asynctune as at

_ROOT = REPO_ROOT
_EXAMPLE = os.path.join(_ROOT, "examples", "subprocess_executor.py")
_GUIDE = os.path.join(_ROOT, "docs", "executors.md")


def _load_example():
    spec = importlib.util.spec_from_file_location("subprocess_executor", _EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so the example's classes pickle and repr by their module
    spec.loader.exec_module(module)
    return module


example = _load_example()
SubprocessExecutor = example.SubprocessExecutor


def steps(config):
    """Reports steps 1..4 with the process and host it runs on; raises at the case's `fail_at`."""
    case, checkpoint = config["case"], at.get_checkpoint()
    for step in range((checkpoint["step"] if checkpoint else 0) + 1, 5):
        if step == case.get("fail_at"):
            raise ValueError(f"bad step {step}")
        at.report(step=step, worker=os.getpid(), host=at.get_trial_resources()["host"],
                  restored=checkpoint is not None, checkpoint={"step": step})


class StopAt(at.Scheduler):
    """Stops a trial at its case's `stop_at` step; lets the others run."""

    def on_trial_result(self, trial, result):
        return at.STOP if result["step"] == trial.config["case"].get("stop_at") else at.CONTINUE


class KillWorkerAt(at.Callback):
    """SIGKILLs the worker under the trial whose case has `kill_at`, at that step, once."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    def on_trial_result(self, trial, result):
        if result["step"] == trial.config["case"].get("kill_at") and not self.killed:
            os.kill(result["worker"], signal.SIGKILL)
            self.killed.append(result["worker"])


def test_an_experiment_runs_through_it_with_a_failure_a_stop_and_a_lost_worker(storage):
    killer = KillWorkerAt()
    cases = [{"name": "plain"}, {"name": "fails", "fail_at": 2}, {"name": "stopped", "stop_at": 2},
             {"name": "lost", "kill_at": 3}]
    analysis = at.run(steps, config={"case": at.grid_search(cases)}, scheduler=StopAt(), callbacks=[killer],
                      max_failures=1, storage_path=storage, verbose=0,
                      executor=SubprocessExecutor({"node-a": 1, "node-b": 1}, kill_grace_s=1))
    trials = {t.config["case"]["name"]: t for t in analysis.trials}
    results = {name: analysis.trial_results(t.trial_id) for name, t in trials.items()}

    assert trials["plain"].status is at.Status.TERMINATED
    assert [r["step"] for r in results["plain"]] == [1, 2, 3, 4]
    # The trial raised, and again when retried from its checkpoint: an error with its traceback.
    assert trials["fails"].status is at.Status.ERROR and trials["fails"].num_failures == 2
    assert "ValueError: bad step 2" in trials["fails"].error
    assert [r["step"] for r in results["fails"]] == [1]
    # The scheduler's STOP on step 2 was in force before step 3.
    assert trials["stopped"].status is at.Status.EARLY_STOPPED
    assert [r["step"] for r in results["stopped"]] == [1, 2]
    # The killed worker is a lost attempt, retried from the checkpoint of step 3 in a new process.
    lost = trials["lost"]
    assert lost.status is at.Status.TERMINATED and lost.num_failures == 1
    assert "killed by SIGKILL" in lost.error
    assert [(r["step"], r["restored"]) for r in results["lost"]] == [(1, False), (2, False), (3, False), (4, True)]
    assert results["lost"][-1]["worker"] not in killer.killed

    # Each attempt had a worker process of its own, on one of the two hosts.
    attempts = {(name, r["worker"]) for name, rs in results.items() for r in rs}
    assert len(attempts) == len({worker for _, worker in attempts}) == 5
    assert {r["host"] for rs in results.values() for r in rs} == {"node-a", "node-b"}


def test_a_worker_that_cannot_start_fails_its_trial_with_the_evidence(storage):
    def exits_at_once(host):
        return [sys.executable, "-c", "import sys; sys.stderr.write('no GPU driver here\\n'); sys.exit(3)"]

    analysis = at.run(steps, config={"case": {}}, storage_path=storage, verbose=0, raise_on_failed_trial=False,
                      executor=SubprocessExecutor({"node-a": 1}, command=exits_at_once))
    trial = analysis.trials[0]
    assert trial.status is at.Status.ERROR
    assert "failed to start: the worker exited with code 3" in trial.error
    assert "no GPU driver here" in trial.error


@pytest.mark.parametrize("hosts, kwargs, match", [
    ({}, {}, "hosts must map host names to CPU slots"),
    ({"node-a": 0}, {}, "CPU slots > 0"),
    ({"": 1}, {}, "each host needs a name"),
    ({"node-a": 1}, {"ready_timeout_s": 0}, "ready_timeout_s must be > 0"),
    ({"node-a": 1}, {"kill_grace_s": -1}, "kill_grace_s must be >= 0"),
], ids=["no-hosts", "zero-cpus", "empty-name", "ready-timeout-0", "kill-grace-negative"])
def test_rejects_bad_arguments(hosts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SubprocessExecutor(hosts, **kwargs)


def test_the_example_is_one_file_under_300_lines_and_the_guide_quotes_it_as_it_is():
    with open(_EXAMPLE) as f:
        source = f.read()
    with open(_GUIDE) as f:
        guide = f.read()
    assert source.count("\n") < 300
    # The guide's indented blocks are pieces of the example's classes: each must be in the file.
    quoted = [block for block in re.findall(r"```python\n(.*?)```", guide, re.S) if block.startswith("    ")]
    assert len(quoted) == 3
    for block in quoted:
        assert block in source, f"docs/executors.md quotes code the example does not have:\n{block}"
