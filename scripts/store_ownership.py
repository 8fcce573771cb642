"""Which modules outside asynctune/store/ spell a file name of the experiment directory.

Issue 27: one package owns the experiment directory, so nothing outside asynctune/store/ should
name one of its files (`"error.txt"`, `f"checkpoint_{i:06d}"`) or build a path from one
(`os.path.join(trial_dir, RESULT_FILE)`). This script lists the modules that still do, from
their os.path.join calls and string literals without spaces (docstrings,
comments and messages that mention a file are prose and are left out), and prints how many.

    python scripts/store_ownership.py          # the offending modules and their count
    python scripts/store_ownership.py --count  # the count only
"""

from __future__ import annotations

import ast
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "asynctune")
STORE = os.path.join(ROOT, "store")

# Every file and directory name the store puts in an experiment directory or a trial's.
NAMES = ("experiment.json", "journal.jsonl", "run_spec.pkl", "searcher_state.pkl", "driver.lock",
         "result.jsonl", "results.jsonl", "result.rewound.jsonl", "results.rewound.jsonl",
         "progress.csv", "params.json", "params.pkl", "error.txt", "stdout.txt", "stderr.txt",
         "decisions.jsonl", "monitor.jsonl", "checkpoint.pkl", "optuna_journal.log")
# Names made from a number or a time: a literal that starts one of them (f"checkpoint_{i:06d}").
PREFIXES = (r"checkpoint_(?:clone_)?(?:$|\()", r"events\.out\.tfevents")
_PATTERN = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(n) for n in NAMES) + r")(?![\w])"
                      r"|^(?:" + "|".join(PREFIXES) + r")")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def names_in(path: str) -> list[tuple[int, str]]:
    """(line, literal) for each string literal of the module at `path` that names a store file."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            # Prose (a message that mentions a file, with spaces) is not a path; a fragment is.
            if _PATTERN.search(node.value) and " " not in node.value.strip():
                hits.append((node.lineno, node.value))
    return sorted(hits)


def _store_names(tree: ast.AST) -> set[str]:
    """The file-name constants (UPPER_CASE) the module imports from the store."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "store" in node.module.split("."):
            found |= {alias.asname or alias.name for alias in node.names if alias.name.isupper()}
    return found


def _is_os_path_join(func: ast.AST) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "join" and isinstance(func.value, ast.Attribute)
            and func.value.attr == "path" and isinstance(func.value.value, ast.Name) and func.value.value.id == "os")


def joins_in(path: str) -> list[tuple[int, str]]:
    """(line, constant) for each os.path.join of the module at `path` that makes a path of a
    store name imported as a constant (the store's functions should make it)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    constants = _store_names(tree)
    return sorted((node.lineno, arg.id) for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and _is_os_path_join(node.func)
                  for arg in node.args if isinstance(arg, ast.Name) and arg.id in constants)


def offenders() -> dict[str, list[tuple[int, str]]]:
    """Module path (relative to the repository) -> its literals naming a store file and its
    os.path.joins of a store name."""
    found = {}
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        if os.path.commonpath([directory, STORE]) == STORE:
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                hits = sorted(names_in(path) + joins_in(path))
                if hits:
                    found[os.path.relpath(path, os.path.dirname(ROOT))] = hits
    return found


def main(argv: list[str]) -> int:
    found = offenders()
    if "--count" not in argv:
        for module, hits in found.items():
            for line, literal in hits:
                print(f"{module}:{line}: {literal!r}")
    print(f"{len(found)} modules outside asynctune/store/ name a file of the experiment directory")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
