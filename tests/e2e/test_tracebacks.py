"""A failing trial's traceback names the user's file and line, as a local Python run would.

Each experiment has a trial that succeeds beside the one that fails, so that run() returns."""

from __future__ import annotations

import inspect
import linecache
import os
import subprocess
import sys
import textwrap

import asynctune as at
from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT
ONE_FAILS = {"fail": at.grid_search([True, False])}


def _error_text(analysis: at.ExperimentAnalysis) -> str:
    (trial,) = [t for t in analysis.trials if t.status is at.Status.ERROR]
    with open(os.path.join(trial.path, "error.txt")) as f:
        return f.read()


def test_a_script_run_as_main_names_its_file_and_line(tmp_path):
    script = tmp_path / "my_experiment.py"
    script.write_text(textwrap.dedent(f"""\
        import asynctune as at

        def train(config):
            at.report(loss=1.0)
            if config["fail"]: raise ValueError("broken on purpose")

        class Model(at.Trainable):
            def step(self):
                return {{"loss": 1 / 0 if self.config["fail"] else 1, "done": True}}

        if __name__ == "__main__":
            for trainable in (train, Model):
                at.run(trainable, config={{"fail": at.grid_search([True, False])}},
                       storage_path={str(tmp_path / "r")!r}, name=trainable.__name__, verbose=0)
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(script)], check=True, timeout=120, env=env)
    text = (tmp_path / "r" / "train" / "trial_00000" / "error.txt").read_text()
    assert f'File "{script}", line 5, in train\n    if config["fail"]: raise ValueError("broken on purpose")' in text
    assert "<dynamic-code>" not in text
    text = (tmp_path / "r" / "Model" / "trial_00000" / "error.txt").read_text()
    assert f'File "{script}", line 9, in step\n    return {{"loss": 1 / 0 if' in text
    # The trial's stderr.txt gets the same traceback.
    assert f'File "{script}", line 9, in step' in (tmp_path / "r" / "Model" / "trial_00000" / "stderr.txt").read_text()


def test_a_function_defined_in_a_test_names_this_file(storage):
    def train(config):  # local, so cloudpickle sends it by value
        at.report(loss=1.0)
        if config["fail"]:
            raise RuntimeError("raised in the test module")

    line = inspect.getsourcelines(train)[1] + 3
    text = _error_text(at.run(train, config=ONE_FAILS, storage_path=storage, verbose=0))
    assert f'File "{__file__}", line {line}, in train\n    raise RuntimeError("raised in the test module")' in text


def test_source_that_exists_only_in_the_driver_travels_with_the_trainable(storage):
    # A notebook cell: IPython compiles it under a made-up file name and keeps its lines in linecache.
    cell = "<ipython-input-7-notebook>"
    source = "import asynctune as at\ndef train(config):\n    at.report(loss=1.0)\n    if config['fail']:\n" \
             "        raise KeyError('from a notebook cell')\n"
    linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)
    try:
        namespace: dict = {"__name__": "__main__"}
        exec(compile(source, cell, "exec"), namespace)
        text = _error_text(at.run(namespace["train"], config=ONE_FAILS, storage_path=storage, verbose=0))
    finally:
        del linecache.cache[cell]
    assert f'File "{cell}", line 5, in train\n    raise KeyError(\'from a notebook cell\')' in text
