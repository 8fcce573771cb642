"""Every README snippet runs as written, or says it is a sketch (issue 30, item 9).

A ```python block is run as a script in a fresh process (HOME and the working directory in a
temporary directory, so ~/asynctune_results lands there); any other fenced block must be ```text
or follow a `<!-- sketch: ... -->` line that says why it is not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

README = os.path.join(REPO_ROOT, "README.md")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def blocks() -> list[tuple[int, str, str, str]]:
    """(line, language, code, the line before the fence) of each fenced block."""
    text = open(README, encoding="utf-8").read()
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((line, match.group(1), match.group(2), before))
    return found


PYTHON = [(line, code) for line, language, code, _ in blocks() if language == "python"]


def test_the_readme_has_runnable_snippets():
    assert len(PYTHON) >= 2


def test_every_other_block_is_text_or_marked_as_a_sketch():
    unmarked = [(line, language) for line, language, _, before in blocks()
                if language not in ("python", "text") and not before.startswith("<!-- sketch:")]
    assert unmarked == [], f"README blocks that neither run nor say they are sketches: {unmarked}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("line, code", PYTHON, ids=[f"line-{line}" for line, _ in PYTHON])
def test_each_python_snippet_runs_as_written(tmp_path, line, code):
    script = tmp_path / f"readme_line_{line}.py"
    script.write_text(code)
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, f"README snippet at line {line} failed:\n{done.stderr[-3000:]}"
    assert os.listdir(tmp_path / "asynctune_results")  # it ran an experiment, where run() puts them
