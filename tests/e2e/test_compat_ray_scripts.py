"""Whole Ray Tune scripts, written as Ray's users write them (Ray 2.x API) with only `ray` replaced by
`asynctune.compat.ray` in their imports, run as programs of their own: each is a `__main__` module
whose trainables cloudpickle sends to real worker processes, and each asserts what Ray would give
it (its last line is "OK"). The scripts are in tests/e2e/ray_scripts/; each reads the results
directory from $RESULTS, or uses Ray's default ~/ray_results under a $HOME of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_scripts")
SCRIPTS = sorted(name for name in os.listdir(SCRIPTS_DIR) if name.endswith(".py"))


def run_script(name: str, results: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a script with its results, and its home directory (~/ray_results), under `results`."""
    return subprocess.run([sys.executable, os.path.join(SCRIPTS_DIR, name)], capture_output=True, text=True,
                          timeout=180, cwd=results, env={**os.environ, "RESULTS": results, "HOME": results, **env})


@pytest.mark.parametrize("name", SCRIPTS, ids=[name.removesuffix(".py") for name in SCRIPTS])
def test_a_ray_tune_script_runs_unchanged(name, tmp_path):
    finished = run_script(name, str(tmp_path))
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    assert finished.stdout.rstrip().endswith("OK"), output[-4000:]


def test_a_cli_reporter_prints_its_columns_instead_of_asynctunes_table(tmp_path):
    finished = run_script("legacy_run_cli_reporter.py", str(tmp_path))
    assert finished.returncode == 0, finished.stderr[-4000:]
    header = next(line for line in finished.stdout.splitlines() if line.startswith("Trial name"))
    assert [column.strip() for column in header.split("|")] == [
        "Trial name", "status", "width", "height", "mean_loss", "iter", "total time (s)"]
    assert "Number of trials: 4 of 4 (4 FINISHED)" in finished.stdout
    assert "asynctune: experiment directory" not in finished.stdout  # asynctune's own table is off


def test_dict_checkpoints_leave_no_temporary_directory_behind(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    finished = run_script("air_session_dict_checkpoints.py", str(tmp_path), TMPDIR=str(temporary))
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert [p.name for p in temporary.iterdir() if p.name.startswith("checkpoint")] == []
