"""Issue 27: only asynctune/store/ spells the experiment directory's file names (the count must not grow)."""

from __future__ import annotations

import importlib.util
import os

_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "store_ownership.py")
ALLOWED = 0  # modules outside the store that name one of its files: ask store/names.py instead


def _ownership():
    spec = importlib.util.spec_from_file_location("store_ownership", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_new_module_outside_the_store_names_its_files():
    found = _ownership().offenders()
    assert len(found) <= ALLOWED, "\n".join(f"{m}: {hits}" for m, hits in found.items())


def test_the_check_sees_a_file_name_spelt_outside_the_store(tmp_path):
    ownership = _ownership()
    module = tmp_path / "m.py"
    module.write_text('"""Mentions error.txt in prose."""\nimport os\n'
                      'def f(d):\n    return os.path.join(d, "error.txt"), f"checkpoint_{3:06d}", "see the error.txt file"\n')
    assert [value for _, value in ownership.names_in(str(module))] == ["checkpoint_", "error.txt"]


def test_the_check_sees_a_path_built_from_a_store_constant(tmp_path):
    ownership = _ownership()
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom asynctune.store.layout import RESULT_FILE\nfrom x import NAME\n"
                      "def f(d):\n    return os.path.join(d, RESULT_FILE), os.path.join(d, NAME)\n")
    assert ownership.joins_in(str(module)) == [(5, "RESULT_FILE")]
