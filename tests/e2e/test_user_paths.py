"""What a user types after the docs, as separate programs: Ctrl-C, the printed resume command
pasted into a shell, `asynctune resume` from another directory (docs/cli.md, docs/faults.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import asynctune as at
from tests.helpers.driver_runs import count_results
from tests.helpers.paths import REPO_ROOT

TRAIN_MODULE = textwrap.dedent("""
    import time
    import asynctune as at

    def train(config):
        start = (at.get_checkpoint() or {"i": 0})["i"]
        for i in range(start + 1, 8):
            time.sleep(0.1)
            at.report(loss=config["x"] / i, checkpoint={"i": i})
""")

DRIVER = textwrap.dedent("""
    import sys
    import asynctune as at
    from my_training import train

    if __name__ == "__main__":
        at.run(train, config={"x": at.grid_search([1, 2])}, metric="loss", mode="min",
               storage_path=sys.argv[1], name="exp", verbose=1, tensorboard=False)
""")


def _env() -> dict[str, str]:
    """PYTHONPATH holds the repository only: the user's own module is importable from its directory."""
    return {**os.environ, "PYTHONPATH": REPO_ROOT}


def _interrupted_run(project, storage: str, sig: int = signal.SIGINT) -> tuple[str, str]:
    """Run the driver from `project` until it recorded results, Ctrl-C it (or send `sig`); (experiment
    dir, its output)."""
    (project / "my_training.py").write_text(TRAIN_MODULE)
    (project / "driver.py").write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, "driver.py", storage], cwd=project, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    experiment_dir = os.path.join(project, storage, "exp")
    deadline = time.time() + 60
    while count_results(experiment_dir) < 2 and time.time() < deadline:
        time.sleep(0.05)
    driver.send_signal(sig)
    output = driver.communicate(timeout=60)[0]
    assert driver.returncode == -sig, output
    return experiment_dir, output


def test_the_resume_command_printed_after_ctrl_c_works_pasted_into_a_shell(tmp_path):
    """The storage path has a space in it: the printed command must still be one the shell runs."""
    project = tmp_path / "my project"
    project.mkdir()
    experiment_dir, output = _interrupted_run(project, "my results")
    command = output.split("Resume with:\n", 1)[1].splitlines()[0].strip()
    pasted = subprocess.run(["bash", "-c", command.replace("asynctune resume", f"{sys.executable} -m asynctune.cli "
                                                           "resume --verbose 0", 1)],
                            cwd=project, env=_env(), capture_output=True, text=True, timeout=120)
    assert pasted.returncode == 0, (command, pasted.stderr)
    with open(os.path.join(experiment_dir, "experiment.json")) as f:
        assert '"status": "FINISHED"' in f.read()


def test_resume_from_another_directory_says_how_to_make_the_trainable_importable(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    experiment_dir, _ = _interrupted_run(project, "results")
    elsewhere = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", experiment_dir], cwd=tmp_path,
                               env=_env(), capture_output=True, text=True, timeout=120)
    assert elsewhere.returncode == 2, elsewhere.stderr
    assert "needs module 'my_training'" in elsewhere.stderr and "PYTHONPATH" in elsewhere.stderr, elsewhere.stderr


FAILING = textwrap.dedent("""
    import asynctune as at

    def train(config):
        raise ValueError("boom")

    at.run(train, num_samples=2, storage_path="results", verbose=1, raise_on_failed_trial="never",
           tensorboard=False)
""")


def test_a_failed_trial_is_announced_once(tmp_path):
    """Without logging configured, asynctune's warning reaches stderr by itself; the console does
    not print the same failure again on stdout."""
    (tmp_path / "failing.py").write_text(FAILING)
    done = subprocess.run([sys.executable, "failing.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    both = done.stdout + done.stderr
    for trial_id in ("trial_00000", "trial_00001"):
        assert both.count(f"{trial_id} failed: ValueError: boom") == 1, both


def test_ls_shows_an_experiment_whose_driver_was_killed_as_interrupted(tmp_path):
    """A SIGKILLed driver leaves experiment.json saying RUNNING; no process holds its lock any more,
    so ls and show say INTERRUPTED (resume continues it), not RUNNING forever."""
    project = tmp_path / "project"
    project.mkdir()
    experiment_dir, _ = _interrupted_run(project, "results", signal.SIGKILL)
    listed = subprocess.run([sys.executable, "-m", "asynctune.cli", "ls", str(project / "results"), "--json"],
                            env=_env(), capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["status"] == "INTERRUPTED"
    resumed = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", experiment_dir, "--verbose", "0"],
                             cwd=project, env=_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert at.ExperimentAnalysis(experiment_dir).status == "FINISHED"


FAILS_UNTIL_FIXED = textwrap.dedent("""
    import os, sys
    import asynctune as at

    def train(config):
        if os.path.exists(config["broken_flag"]):
            raise RuntimeError("the data is not there yet")
        at.report(loss=1.0)

    if __name__ == "__main__":
        at.run(train, config={"broken_flag": sys.argv[1]}, metric="loss", mode="min", storage_path="results",
               name="exp", verbose=0, raise_on_failed_trial="never", tensorboard=False)
""")


def test_asynctune_resume_runs_failed_trials_again_when_asked(tmp_path):
    """docs/cli.md: --errored restart runs the ERROR trials of a finished experiment again."""
    flag = tmp_path / "broken"
    flag.write_text("")
    (tmp_path / "driver.py").write_text(FAILS_UNTIL_FIXED)
    first = subprocess.run([sys.executable, "driver.py", str(flag)], cwd=tmp_path, env=_env(), capture_output=True,
                           text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    experiment_dir = str(tmp_path / "results" / "exp")
    assert [t.status for t in at.ExperimentAnalysis(experiment_dir).trials] == [at.Status.ERROR]
    flag.unlink()  # the cause is fixed
    again = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", experiment_dir, "--errored", "restart",
                            "-v", "3"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert [t.status for t in at.ExperimentAnalysis(experiment_dir).trials] == [at.Status.FINISHED]
    once_more = subprocess.run([sys.executable, "-m", "asynctune.cli", "resume", experiment_dir], cwd=tmp_path,
                               env=_env(), capture_output=True, text=True, timeout=120)
    said = once_more.stdout + once_more.stderr
    assert once_more.returncode == 0 and said.count("already finished; there is nothing to resume") == 1, said


BROKEN_CALLBACK = textwrap.dedent("""
    import asynctune as at

    class Broken(at.Callback):
        def on_trial_result(self, trial, result):
            raise RuntimeError("a bug in my callback")

    def train(config):
        for step in range(5):
            at.report(loss=float(step))

    at.run(train, num_samples=2, storage_path="results", verbose=0, callbacks=[Broken()], tensorboard=False)
""")


def test_a_callback_failing_on_every_result_shows_one_traceback_and_a_count(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN_CALLBACK)
    done = subprocess.run([sys.executable, "broken.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RuntimeError: a bug in my callback") == 1, done.stderr
    assert "callback Broken.on_trial_result failed 10 times in all" in done.stderr, done.stderr
