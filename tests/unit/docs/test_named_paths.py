"""Every file the README, docs/ and scripts/ name in this repository exists: the layout moved
files once, and eight pages and two scripts went on naming the old paths."""

from __future__ import annotations

import glob
import os
import re

from tests.helpers.paths import REPO_ROOT

_NAMED = re.compile(r"\b(?:asynctune|tests|benchmarks|scripts|examples)/[\w./-]*\.(?:py|sh|md)\b")


def _documents() -> list[str]:
    return [os.path.join(REPO_ROOT, "README.md"),
            *glob.glob(os.path.join(REPO_ROOT, "docs", "**", "*.md"), recursive=True),
            *glob.glob(os.path.join(REPO_ROOT, "scripts", "*"))]


def test_every_repository_path_the_docs_and_scripts_name_exists():
    missing = {}
    for document in _documents():
        with open(document, encoding="utf-8") as f:
            for path in set(_NAMED.findall(f.read())):
                if not os.path.exists(os.path.join(REPO_ROOT, path)):
                    missing.setdefault(os.path.relpath(document, REPO_ROOT), []).append(path)
    assert not missing, missing


def test_the_check_finds_a_path_that_is_gone():
    assert _NAMED.findall("run `tests/test_gpu.py` and scripts/gpu_check.sh") == ["tests/test_gpu.py",
                                                                                  "scripts/gpu_check.sh"]
