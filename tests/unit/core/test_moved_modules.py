"""Old module names (before the package layout) still import: pickles written by an older
asynctune name their classes by module, and scripts may import `asynctune.space`."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import pytest

import asynctune
from asynctune.core.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_name_is_the_new_module(old: str) -> None:
    sys.modules.pop(f"asynctune.{old}", None)  # an earlier test may have imported it
    with pytest.warns(DeprecationWarning, match=f"asynctune.{old} moved to asynctune.{MOVED[old]}"):
        module = importlib.import_module(f"asynctune.{old}")
    assert module is importlib.import_module(f"asynctune.{MOVED[old]}")


def test_a_pickle_from_the_old_layout_loads_the_current_class() -> None:
    # protocol 0's GLOBAL opcode, as an older asynctune's run_spec.pkl names a search-space class
    loaded = pickle.loads(b"casynctune.space\nFloat\np0\n.")
    assert loaded is type(asynctune.uniform(0, 1))


def test_an_old_import_in_a_script_warns_and_works(tmp_path) -> None:
    script = tmp_path / "old.py"
    script.write_text("from asynctune.space import uniform\nprint(type(uniform(0, 1)).__module__)\n")
    out = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", str(script)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "asynctune.core.space"
    assert "asynctune.space moved to asynctune.core.space" in out.stderr
