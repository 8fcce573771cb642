"""Running one (problem, method, seed) and the cache of its trace.

A trace is what the anytime regret needs and nothing more: the evaluations at which the
recommended config changed and its regret from then on, `[[n, regret], ...]`. The recommended
config after n evaluations is the one with the best value the searcher saw; on a noisy problem
its regret is that of its noiseless value. The regret at budget b is the last entry with n <= b.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

from .peers import METHODS
from .problems import PROBLEMS

Trace = dict[str, Any]  # {"best": [[n, regret], ...], "cpu": seconds}


def one_run(job: tuple[str, str, int, int]) -> tuple[str, str, int, Trace]:
    """Run `method` on `problem` with `seed` for `budget` evaluations."""
    problem_name, method, seed, budget = job
    problem = PROBLEMS[problem_name]
    evaluate = problem.objective(seed)
    seen: list[float] = []
    best: list[list[float]] = []

    def record(config: dict[str, Any]) -> float:
        value, true = evaluate(config)
        if not seen or value < min(seen):  # a new recommended config
            best.append([len(seen) + 1, float(f"{true - problem.optimum:.4g}")])
        seen.append(value)
        return value

    start = time.process_time()  # CPU seconds: fair on a machine shared with other work
    METHODS[method](problem.space, record, budget, seed)
    if len(seen) != budget:
        raise RuntimeError(f"{method} on {problem_name} evaluated {len(seen)} configs, not {budget}")
    return problem_name, method, seed, {"best": best, "budget": budget, "cpu": round(time.process_time() - start, 2)}


def regret_at(trace: Trace, budget: int) -> float:
    return [regret for n, regret in trace["best"] if n <= budget][-1]


def evaluations(trace: Trace) -> int:
    return int(trace.get("budget", 0))


def cache_key(problem: str, method: str, seed: int) -> str:
    return f"{problem}|{method}|{seed}"


def load_cache(path: str) -> dict[str, Trace]:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def save_cache(path: str, cache: dict[str, Trace]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "w") as f:  # one run per line, so that diffs show which runs changed
        f.write("{\n" + ",\n".join(f"{json.dumps(key)}: {json.dumps(trace, separators=(',', ':'))}"
                                   for key, trace in sorted(cache.items())) + "\n}\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # an interrupted run keeps the previous cache
