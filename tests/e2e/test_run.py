"""asynctune.run() end to end, with real worker processes and real files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import psutil
import pytest

import asynctune as at
from asynctune import CoroutineScheduler, Scheduler, TrialResult


def quadratic(config):
    for step in range(3):
        at.report(loss=(config["x"] - 3) ** 2 + 1 / (step + 1))


def counting(config):
    """State is a counter in the checkpoint: a resumed trial continues, a restarted one starts at 0."""
    checkpoint = at.get_checkpoint()
    count = checkpoint["count"] if checkpoint else 0
    while count < config.get("until", 6):
        count += 1
        time.sleep(config.get("sleep", 0))
        at.report(count=count, restored=checkpoint is not None, checkpoint={"count": count})


class Counter(at.Trainable):
    def setup(self, config):
        self.count = 0

    def step(self):
        self.count += self.config["increment"]
        return {"count": self.count}

    def save_checkpoint(self, checkpoint_dir):
        return {"count": self.count}

    def load_checkpoint(self, checkpoint):
        self.count = checkpoint["count"]


class FileCounter(Counter):
    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "count.txt"), "w") as f:
            f.write(str(self.count))

    def load_checkpoint(self, checkpoint):
        with open(os.path.join(checkpoint, "count.txt")) as f:
            self.count = int(f.read())


def test_function_api_finds_the_best_config_and_keeps_everything_on_disk(storage):
    analysis = at.run(quadratic, config={"x": at.grid_search([0, 2.5, 3, 5])}, metric="loss", mode="min",
                      storage_path=storage, name="quad", verbose=0)
    assert analysis.best_config == {"x": 3}
    assert analysis.best_result["loss"] == pytest.approx(1 / 3)
    assert [t.status for t in analysis.trials] == [at.Status.TERMINATED] * 4
    for trial in analysis.trials:
        with open(os.path.join(trial.path, "result.jsonl")) as f:
            lines = [json.loads(line) for line in f]
        assert [r["training_iteration"] for r in lines] == [1, 2, 3]
        with open(os.path.join(trial.path, "progress.csv")) as f:
            assert len(f.read().strip().splitlines()) == 4  # header + 3 rows
        with open(os.path.join(trial.path, "params.json")) as f:
            assert json.load(f) == trial.config
    later = at.ExperimentAnalysis(os.path.join(storage, "quad"))
    assert later.best_config == {"x": 3} and later.status == "FINISHED"
    frame = later.dataframe()
    assert list(frame.sort_values("loss")["config/x"])[0] == 3
    assert len(later.trial_dataframes()["trial_00000"]) == 3


def test_results_carry_the_framework_fields(storage):
    analysis = at.run(quadratic, config={"x": 1}, storage_path=storage, verbose=0)
    result = analysis.trials[0].last_result
    for key in ("trial_id", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "hostname", "pid"):
        assert key in result
    assert result["trial_id"] == "trial_00000" and result["training_iteration"] == 3


def test_class_api_with_checkpoints_and_stop(storage):
    analysis = at.run(FileCounter, config={"increment": at.grid_search([1, 2])}, stop={"training_iteration": 4},
                      checkpoint_frequency=2, metric="count", mode="max", storage_path=storage, verbose=0)
    assert analysis.best_result["count"] == 8
    assert analysis.best_config == {"increment": 2}
    checkpoint = analysis.best_checkpoint
    assert checkpoint.endswith("checkpoint_000004")
    with open(os.path.join(checkpoint, "count.txt")) as f:
        assert f.read() == "8"


class CheckpointOnBest(Counter):
    """Asks for a checkpoint at steps 2 and 5 only (Ray's should_checkpoint)."""

    def step(self):
        return {**super().step(), "should_checkpoint": self.count in (2, 5)}


def test_a_step_that_returns_should_checkpoint_is_checkpointed(storage):
    analysis = at.run(CheckpointOnBest, config={"increment": 1}, stop={"training_iteration": 6},
                      checkpoint_at_end=False, metric="count", mode="max", storage_path=storage, verbose=0)
    trial = analysis.trials[0]
    assert sorted(n for n in os.listdir(trial.path) if n.startswith("checkpoint_")) == [
        "checkpoint_000002", "checkpoint_000005"]
    assert trial.checkpoint.endswith("checkpoint_000005")


def test_class_must_implement_step(storage):
    class NoStep(at.Trainable):
        pass

    with pytest.raises(ValueError, match="must implement step"):
        at.run(NoStep, storage_path=storage, verbose=0)


class PauseAllThenResume(CoroutineScheduler):
    """Straight-line coroutine: pause every trial at iteration 2, resume them all once all are."""

    def __init__(self, population: int) -> None:
        super().__init__()
        self.population = population

    async def run(self):
        waiting = []
        async for event in self.events():
            if isinstance(event, TrialResult) and event.result["training_iteration"] == 2 and event.trial not in waiting:
                self.pause(event.trial)
                waiting.append(event.trial)
                if len(waiting) == self.population:
                    for trial in waiting:
                        self.resume(trial)


def test_paused_trials_resume_from_their_checkpoint(storage):
    analysis = at.run(counting, config={"until": 4, "x": at.grid_search([1, 2, 3])}, storage_path=storage,
                      scheduler=PauseAllThenResume(3), verbose=0)
    for trial in analysis.trials:
        results = analysis.trial_results(trial.trial_id)
        assert [r["count"] for r in results] == [1, 2, 3, 4]  # continued, not restarted
        assert [r["restored"] for r in results] == [False, False, True, True]
        assert [r["training_iteration"] for r in results] == [1, 2, 3, 4]
        assert trial.status is at.Status.TERMINATED


def test_class_trainable_pauses_with_a_saved_checkpoint(storage):
    analysis = at.run(Counter, config={"increment": at.grid_search([1, 10])}, stop={"training_iteration": 4},
                      storage_path=storage, scheduler=PauseAllThenResume(2), verbose=0)
    assert sorted(t.last_result["count"] for t in analysis.trials) == [4, 40]


def test_directory_checkpoints_are_copied_into_the_trial(storage, tmp_path):
    def train(config):
        previous = at.get_checkpoint()
        scratch = tmp_path / f"scratch-{config['x']}"
        scratch.mkdir(exist_ok=True)
        (scratch / "weights.txt").write_text(f"w{config['x']}")
        at.report(score=1, checkpoint=str(scratch), had_previous=previous is not None)

    analysis = at.run(train, config={"x": 7}, metric="score", mode="max", storage_path=storage, verbose=0)
    checkpoint = analysis.best_checkpoint
    assert checkpoint.startswith(analysis.trials[0].path)
    with open(os.path.join(checkpoint, "weights.txt")) as f:
        assert f.read() == "w7"
    assert analysis.load_best_checkpoint() == checkpoint


class StopAtThree(Scheduler):
    def on_trial_result(self, trial, result):
        return at.STOP if result["training_iteration"] >= 3 else at.CONTINUE


@pytest.mark.parametrize("scheduler", [StopAtThree, None], ids=["callback", "coroutine"])
def test_a_decision_is_in_force_before_the_next_step(storage, scheduler):
    class CoroutineStopAtThree(CoroutineScheduler):
        async def run(self):
            async for event in self.events():
                if isinstance(event, TrialResult) and event.result["training_iteration"] >= 3:
                    self.stop(event.trial)

    def fast(config):
        for i in range(1000):
            at.report(i=i)

    chosen = scheduler() if scheduler else CoroutineStopAtThree()
    analysis = at.run(fast, num_samples=4, storage_path=storage, scheduler=chosen, verbose=0)
    assert [t.num_results for t in analysis.trials] == [3, 3, 3, 3]


def test_time_budget_ends_the_experiment(storage):
    def slow(config):
        for _ in range(1000):
            time.sleep(0.05)
            at.report(x=1)

    start = time.time()
    analysis = at.run(slow, num_samples=-1, time_budget_s=1.5, storage_path=storage, verbose=0)
    assert time.time() - start < 8
    assert analysis.status == "STOPPED"
    assert all(t.num_results > 0 for t in analysis.trials if t.start_time)


def three_slow_steps(config):
    start = (at.get_checkpoint() or {}).get("i", 0)
    for i in range(start, 3):
        time.sleep(0.25)
        at.report(x=config["x"], checkpoint={"i": i + 1})
        if config["x"] == 1 and config["fail"]:
            raise RuntimeError("fails after its first checkpoint")


def test_a_spent_time_budget_is_a_clear_error_on_resume_and_a_larger_one_goes_on(storage):
    first = at.run(three_slow_steps, config={"x": at.grid_search([1, 2, 3, 4]), "fail": True}, max_concurrent_trials=1,
                   time_budget_s=1.0, storage_path=storage, name="budget", verbose=0, raise_on_failed_trial="never")
    assert first.status == "STOPPED" and first.trials[0].status is at.Status.ERROR
    # Before: the resume started the trials left and ended them at once, FINISHED with no result.
    with pytest.raises(ValueError, match=r"spent its time budget \(time_budget_s=1;.*--time-budget-s \d+"):
        at.resume(first.experiment_dir, verbose=0)
    with pytest.raises(ValueError, match="spent its time budget"):  # refused before the restart moves anything
        at.resume(first.experiment_dir, errored="restart", verbose=0)
    assert os.listdir(first.trials[0].path).count("checkpoint_000001") == 1
    again = at.resume(first.experiment_dir, time_budget_s=60, verbose=0)
    assert again.status == "FINISHED"
    before = {t.trial_id: t.num_results for t in first.trials}  # those cut off stay FINISHED, as in Ray
    assert len(before) < 4 and [t.config["x"] for t in again.trials] == [1, 2, 3, 4]
    assert again.trials[0].status is at.Status.ERROR  # kept failed: errored="keep"
    assert all(t.status is at.Status.FINISHED and t.num_results == before.get(t.trial_id, 3) for t in again.trials[1:])


def test_failing_trial_is_error_with_traceback_and_others_go_on(storage):
    def sometimes(config):
        at.report(score=config["x"])
        if config["x"] == 2:
            raise ValueError("bad x")
        at.report(score=config["x"] * 10)

    analysis = at.run(sometimes, config={"x": at.grid_search([1, 2, 3])}, metric="score", mode="max",
                      storage_path=storage, verbose=0)
    statuses = {t.config["x"]: t.status for t in analysis.trials}
    assert statuses == {1: at.Status.TERMINATED, 2: at.Status.ERROR, 3: at.Status.TERMINATED}
    failed = next(t for t in analysis.trials if t.config["x"] == 2)
    assert failed.error == "ValueError: bad x"
    with open(os.path.join(failed.path, "error.txt")) as f:
        text = f.read()
    assert "Traceback" in text and "bad x" in text
    assert failed.num_results == 1  # what it reported before failing is kept
    assert analysis.best_result["score"] == 30


def test_retries_resume_from_the_last_checkpoint(storage, tmp_path):
    marker = tmp_path / "failures"

    def flaky(config):
        checkpoint = at.get_checkpoint()
        count = checkpoint["count"] if checkpoint else 0
        while count < 5:
            count += 1
            at.report(count=count, checkpoint={"count": count})
            failures = int(marker.read_text()) if marker.exists() else 0
            if count == 3 + failures and failures < 2:
                marker.write_text(str(failures + 1))
                raise RuntimeError(f"flaky {failures}")

    analysis = at.run(flaky, max_failures=2, storage_path=storage, verbose=0)
    trial = analysis.trials[0]
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 2
    counts = [r["count"] for r in analysis.trial_results(trial.trial_id)]
    assert counts == [1, 2, 3, 4, 5]  # restarted from checkpoints 3 and 4, never from scratch
    with open(os.path.join(trial.path, "error.txt")) as f:
        text = f.read()
    assert "attempt 1: RuntimeError: flaky 0" in text and "attempt 2: RuntimeError: flaky 1" in text


def test_fail_fast_raises_the_first_failure(storage):
    def broken(config):
        raise KeyError("missing")

    with pytest.raises(at.TrialFailed, match="missing") as info:
        at.run(broken, num_samples=3, fail_fast=True, storage_path=storage, verbose=0)
    assert "KeyError" in info.value.traceback


def test_a_killed_worker_fails_its_trial_at_once(storage):
    def suicide(config):
        at.report(x=1)
        if config["die"]:
            os.kill(os.getpid(), signal.SIGKILL)
        at.report(x=2)

    start = time.time()
    analysis = at.run(suicide, config={"die": at.grid_search([True, False])}, storage_path=storage, verbose=0)
    assert time.time() - start < 10
    dead = next(t for t in analysis.trials if t.config["die"])
    assert dead.status is at.Status.ERROR and "SIGKILL" in dead.error
    assert dead.num_results == 1
    alive = next(t for t in analysis.trials if not t.config["die"])
    assert alive.status is at.Status.TERMINATED and alive.num_results == 2


def _prints_when_even(config):
    if config["i"] % 2 == 0:
        print(f"trial {config['i']}")
    at.report(x=1)


def test_a_reused_worker_hands_its_empty_output_files_to_the_next_trial(storage):
    """Creating a file is the dearest part of a short trial on a slow file system: a trial that
    printed nothing leaves its empty stdout.txt / stderr.txt to the next one on its worker."""
    analysis = at.run(_prints_when_even, config={"i": at.grid_search([0, 1, 2, 3])}, storage_path=storage,
                      verbose=0, executor=at.LocalExecutor(cpus=1))  # one worker, trials in order

    def output(i):
        path = os.path.join(analysis.experiment_dir, f"trial_{i:05d}")
        found = {}
        for name in ("stdout.txt", "stderr.txt"):
            if os.path.exists(os.path.join(path, name)):
                assert oct(os.stat(os.path.join(path, name)).st_mode & 0o777) == "0o600"
                with open(os.path.join(path, name)) as f:
                    found[name] = f.read()
        return found

    assert [t.status for t in analysis.trials] == [at.Status.FINISHED] * 4
    assert output(0) == {"stdout.txt": "trial 0\n"}  # its empty stderr.txt went to trial 1
    assert output(1) == {}  # printed nothing: both went on to trial 2
    assert output(2) == {"stdout.txt": "trial 2\n"}
    assert output(3) == {"stdout.txt": "", "stderr.txt": ""}  # the last trial on the worker keeps its own


def test_trial_output_is_kept_in_its_directory(storage):
    def noisy(config):
        import sys
        print("hello from the trial")
        print("a warning", file=sys.stderr)
        at.report(x=1)

    analysis = at.run(noisy, storage_path=storage, verbose=0)
    path = analysis.trials[0].path
    with open(os.path.join(path, "stdout.txt")) as f:
        assert "hello from the trial" in f.read()
    with open(os.path.join(path, "stderr.txt")) as f:
        assert "a warning" in f.read()


def test_workers_are_reused_between_trials(storage):
    def pid(config):
        at.report(pid_seen=os.getpid())

    analysis = at.run(pid, num_samples=6, max_concurrent_trials=1, storage_path=storage, verbose=0)
    assert len({t.last_result["pid_seen"] for t in analysis.trials}) == 1


def test_resources_per_trial_limit_concurrency(storage):
    def sleepy(config):
        at.report(start=time.time())
        time.sleep(0.3)
        at.report(end=time.time())

    analysis = at.run(sleepy, num_samples=4, resources_per_trial={"cpu": 2},
                      executor=at.LocalExecutor(cpus=2), storage_path=storage, verbose=0)
    spans = sorted((r[0]["start"], r[1]["end"]) for r in (analysis.trial_results(t.trial_id) for t in analysis.trials))
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # never two at once


def test_resources_callable_per_config(storage):
    def placement(config):
        at.report(cpu=at.get_trial_resources()["cpu"])

    analysis = at.run(placement, config={"big": at.grid_search([True, False])}, storage_path=storage, verbose=0,
                      resources_per_trial=lambda config: {"cpu": 2 if config["big"] else 1},
                      executor=at.LocalExecutor(cpus=2))
    assert {t.config["big"]: t.last_result["cpu"] for t in analysis.trials} == {True: 2.0, False: 1.0}


class Exploit(CoroutineScheduler):
    """A two-trial PBT step: at iteration 2 the worse trial takes the better one's checkpoint."""

    async def run(self):
        latest = {}
        async for event in self.events():
            if not isinstance(event, TrialResult) or event.result["training_iteration"] != 2:
                continue
            latest[event.trial] = event.result
            if len(latest) == 1:
                self.pause(event.trial)  # wait for the other trial to reach iteration 2
                continue
            (first, r1), (second, r2) = latest.items()
            worse, better = (first, second) if r1["count"] < r2["count"] else (second, first)
            if worse is event.trial:
                self.mutate(worse, {**worse.config, "cloned": True}, better.checkpoint)
                self.resume(first)
            else:
                self.resume(worse, config={**worse.config, "cloned": True}, checkpoint=better.checkpoint)


def test_mutate_continues_from_another_trials_checkpoint(storage):
    def grow(config):
        checkpoint = at.get_checkpoint()
        count = checkpoint["count"] if checkpoint else 0
        while count < 100:
            count += config["step"]
            at.report(count=count, cloned=config.get("cloned", False), checkpoint={"count": count})
            if at.get_trial_id() and count >= 4 * config["step"] and not config.get("cloned"):
                return

    analysis = at.run(grow, config={"step": at.grid_search([1, 10])}, storage_path=storage, verbose=0,
                      scheduler=Exploit(), stop={"training_iteration": 4})
    slow = next(t for t in analysis.trials if t.config["step"] == 1)
    counts = [r["count"] for r in analysis.trial_results(slow.trial_id)]
    assert counts[:2] == [1, 2] and counts[2] == 21  # cloned count 20 from the fast trial, then +1
    assert slow.config["cloned"] is True
    assert os.path.basename(slow.checkpoint).startswith("checkpoint_") and slow.checkpoint.startswith(slow.path)


def test_metric_never_reported_is_a_clear_error(storage):
    with pytest.raises(ValueError, match=r"metric='accuracy' is not in trial_00000's first result; it reported: loss"):
        at.run(quadratic, config={"x": 1}, metric="accuracy", mode="max", storage_path=storage, verbose=0)


def test_a_misspelt_metric_is_named_with_its_close_match(storage):
    """metric="los" for a trainable that reports loss: the error says which key was meant, as it
    does for a misspelt stop= key, instead of only telling the user to report "los"."""
    with pytest.raises(ValueError, match=r"metric='los' is not in .* Did you mean metric='loss'\? Else report it"):
        at.run(quadratic, config={"x": 1}, metric="los", mode="min", storage_path=storage, verbose=0)


async def test_cancellation_leaves_no_process_behind(storage):
    def forever(config):
        child = __import__("subprocess").Popen(["sleep", "60"])  # a grandchild must go too
        while True:
            time.sleep(0.02)
            at.report(child=child.pid)

    task = asyncio.create_task(at.run_async(forever, num_samples=2, storage_path=storage, verbose=0))
    deadline = time.time() + 20
    while time.time() < deadline:
        await asyncio.sleep(0.1)
        if len(psutil.Process().children(recursive=True)) >= 4:
            break
    assert len(psutil.Process().children(recursive=True)) >= 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the autouse fixture asserts that no worker and no grandchild is left


def test_ctrl_c_in_a_script_stops_everything(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "experiment.py"
    script.write_text(
        "import time, asynctune as at\n"
        "def train(config):\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "        at.report(x=1)\n"
        "if __name__ == '__main__':\n"
        f"    at.run(train, num_samples=2, storage_path={str(tmp_path / 'r')!r}, name='exp', verbose=1)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline and len(psutil.Process(proc.pid).children(recursive=True)) < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"workers left after Ctrl-C: {alive}"
    with open(tmp_path / "r" / "exp" / "experiment.json") as f:
        state = json.load(f)
    assert state["status"] == "INTERRUPTED"
    assert f"asynctune resume {tmp_path / 'r' / 'exp'}" in output.decode()
    # What the trials reported before Ctrl-C is on disk (a trial may not have reported yet).
    reported = [(tmp_path / "r" / "exp" / t["trial_id"] / "result.jsonl") for t in state["trials"]]
    assert sum(len(p.read_text().splitlines()) for p in reported if p.exists()) > 0


def test_console_table_reads_well_in_a_file(storage, tmp_path):
    import io
    from asynctune.reporting.console import ConsoleReporter
    from asynctune.core.space import Space

    out = io.StringIO()
    space = {"x": at.grid_search([1, 2])}
    reporter = ConsoleReporter(metric="loss", mode="min", space=Space(space), file=out, plain_interval_s=0)
    at.run(quadratic, config=space, metric="loss", mode="min", storage_path=storage, verbose=0, callbacks=[reporter])
    text = out.getvalue()
    assert "\x1b[" not in text  # no terminal escapes in a file
    assert "trial_00000" in text and "FINISHED" in text and "best loss" in text
    assert "Trials: 2 (2 FINISHED)" in text


def test_a_worker_that_could_not_load_the_trainable_gets_it_again(storage, tmp_path):
    """The worker cannot unpickle the trainable for the first trial (its module is missing);
    once it is back, the same reused worker must be sent the trainable again."""
    import importlib
    import sys

    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    source = module_dir / "flaky_module.py"
    source.write_text("import asynctune, os\ndef train(config):\n    asynctune.report(pid=os.getpid())\n")
    sys.path.insert(0, str(module_dir))
    try:
        train = importlib.import_module("flaky_module").train  # pickled by reference to its module

        class PutTheModuleBack(at.Callback):
            def on_trial_error(self, trial):
                (module_dir / "hidden.txt").rename(source)

        class HideTheModule(at.Callback):
            def on_experiment_start(self, experiment_dir, trials):
                source.rename(module_dir / "hidden.txt")

        analysis = at.run(train, num_samples=3, max_concurrent_trials=1, storage_path=storage, verbose=0,
                          callbacks=[HideTheModule(), PutTheModuleBack()])
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("flaky_module", None)
    statuses = [t.status for t in analysis.trials]
    assert statuses[0] is at.Status.ERROR and "flaky_module" in analysis.trials[0].error
    assert statuses[1:] == [at.Status.TERMINATED, at.Status.TERMINATED], [t.error for t in analysis.trials]


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_scheduler_that_raises_fails_the_trial_and_its_worker_is_ended(storage, tmp_path, pipelined):
    """Waiting for each decision, the worker waits for one that never comes: it must not hold its
    slot through the retry. Pipelined (FIFO's empty synchronous_results), the worker did not wait:
    the trial fails and is retried all the same, whether its end came before the failure or not."""
    pids = tmp_path / "pids"

    class Broken(at.FIFOScheduler):
        def synchronous_results(self, trial):
            return super().synchronous_results(trial) if pipelined else None

        def on_trial_result(self, trial, result):
            if trial.num_failures == 0:
                raise TypeError("a bug in the scheduler")
            return super().on_trial_result(trial, result)

    def train(config):
        earlier = [int(p) for p in pids.read_text().split()] if pids.exists() else []
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        alive = [p for p in earlier if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        at.report(loss=1.0, earlier_alive=len(alive))

    analysis = at.run(train, num_samples=1, max_failures=1, scheduler=Broken(), metric="loss", mode="min",
                      storage_path=storage, verbose=0, raise_on_failed_trial=False)
    trial = analysis.trials[0]
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    assert "TypeError: a bug in the scheduler" in open(os.path.join(trial.path, "error.txt")).read()
    assert [r["training_iteration"] for r in analysis.trial_results(trial.trial_id)] == [1]
    if not pipelined:
        assert analysis.trial_results(trial.trial_id)[-1]["earlier_alive"] == 0
