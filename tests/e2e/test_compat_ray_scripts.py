"""Whole Ray Tune scripts, written as Ray's users write them (Ray 2.x API) with only `ray` replaced by
`asynctune.compat.ray` in their imports, run as programs of their own: each is a `__main__` module
whose trainables cloudpickle sends to real worker processes, and each asserts what Ray would give
it (its last line is "OK"). The scripts are in tests/e2e/ray_scripts/; each reads the results
directory from $RESULTS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_scripts")
SCRIPTS = sorted(name for name in os.listdir(SCRIPTS_DIR) if name.endswith(".py"))


def run_script(name: str, results: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, os.path.join(SCRIPTS_DIR, name)], capture_output=True, text=True,
                          timeout=180, cwd=results, env={**os.environ, "RESULTS": results, **env})


@pytest.mark.parametrize("name", SCRIPTS, ids=[name.removesuffix(".py") for name in SCRIPTS])
def test_a_ray_tune_script_runs_unchanged(name, tmp_path):
    finished = run_script(name, str(tmp_path))
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    assert finished.stdout.rstrip().endswith("OK"), output[-4000:]
