"""Shared fixtures: a storage directory per test, an experiment on the simulated executor, and a
check that no process outlives a test. Helpers shared by several test modules are in tests/helpers/."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

# One BLAS thread per process: the suite runs on several pytest workers (and trials in worker
# processes), and BLAS threads spinning for a core that another process holds cost a GP-based
# searcher four times its CPU on a busy two-core machine. Set before anything imports numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Scripts that tests start as separate processes (drivers killed mid-run, CLI runs) must import
# this checkout's asynctune, not whichever one an editable install points at.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
# One signing key for this test session (store/signing.py), not the user's: drivers and workers
# the tests start inherit it.
if "ASYNCTUNE_KEY_FILE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _key_dir = tempfile.mkdtemp(prefix="asynctune-test-key-")
    os.environ["ASYNCTUNE_KEY_FILE"] = os.path.join(_key_dir, "key")
    atexit.register(shutil.rmtree, _key_dir, True)  # by the process that made it: the xdist workers share it


@pytest.fixture
def storage(tmp_path):
    return str(tmp_path / "results")


@pytest.fixture
def simulated(storage) -> Iterator[Callable[..., object]]:
    """Run an experiment on the SimulatedExecutor under this test's storage: deterministic, and
    no process is started. `simulated(workload, **run_kwargs)`; tests.helpers.simulated.table()
    makes a small workload.

    Example:
        def test_asha_stops_the_worst(simulated):
            analysis = simulated(table(4), scheduler=at.ASHAScheduler(max_t=10), recording="files")
    """
    from tests.helpers.simulated import simulate

    yield functools.partial(simulate, storage=storage)


def _children() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="session")
def multiprocessing_resource_tracker():
    """Dask's LocalCluster starts workers with multiprocessing, whose resource tracker is one helper
    process per interpreter that lives as long as it does: start it before the per-test check of
    leftover processes takes its snapshot (being session-scoped, it is set up before that check)."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Every test must end every worker (and the workers' children) it started."""
    before = {p.pid for p in _children()}
    yield
    deadline = time.time() + 5
    leftover = [p for p in _children() if p.pid not in before]
    while leftover and time.time() < deadline:
        time.sleep(0.05)
        leftover = [p for p in _children() if p.pid not in before and p.is_running()
                    and p.status() != psutil.STATUS_ZOMBIE]
    assert not leftover, f"processes left behind: {[(p.pid, p.cmdline()) for p in leftover]}"
