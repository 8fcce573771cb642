"""Tables from the cache of traces: median simple regret per problem, method and budget, and the
ratio of one method's median to another's (same seeds), as text or markdown."""

from __future__ import annotations

import numpy as np

from .traces import Trace, cache_key, evaluations, regret_at

MINE = "TPESearch"
PEERS = ("optuna-tpe", "hyperopt-tpe")


def regrets(cache: dict[str, Trace], problem: str, method: str, seeds: list[int], budget: int) -> np.ndarray | None:
    """The regret at `budget` of each seed, or None when a seed's trace is missing or too short."""
    traces = [cache.get(cache_key(problem, method, s)) for s in seeds]
    if not seeds or any(t is None or evaluations(t) < budget for t in traces):
        return None
    return np.array([regret_at(t, budget) for t in traces])


def median(cache: dict[str, Trace], problem: str, method: str, seeds: list[int], budget: int) -> float | None:
    r = regrets(cache, problem, method, seeds, budget)
    return None if r is None else float(np.median(r))


def ratio(mine: float | None, theirs: float | None) -> float | None:
    """mine / theirs; two zero medians (both found the exact optimum) are a tie, 1."""
    if mine is None or theirs is None:
        return None
    if theirs <= 1e-12:
        return 1.0 if mine <= 1e-12 else float("inf")
    return mine / theirs


def seeds_of(cache: dict[str, Trace], problem: str, method: str, seeds: int) -> list[int]:
    """The seeds 0..n-1 that the cache holds for this method (n <= seeds), so methods compare on the same seeds."""
    n = 0
    while n < seeds and cache_key(problem, method, n) in cache:
        n += 1
    return list(range(n))


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _ratio_cell(r: float | None, markdown: bool) -> str:
    if r is None:
        return "-"
    text = "inf" if r == float("inf") else f"{r:.2f}"
    return f"**{text}**" if markdown and r > 1.0 else text  # bold: TPESearch loses


def regret_table(cache: dict[str, Trace], problems: list[str], methods: list[str], budgets: list[int], seeds: int,
                 *, markdown: bool = False, mine: str = MINE) -> str:
    """One row per problem and budget: each method's median regret over seeds 0..seeds-1, then
    `mine`'s median over each peer's (bold where `mine` is worse)."""
    peers = [p for p in PEERS if p in methods] if mine in methods else []
    header = ["problem", "evals", *methods, *(f"{mine} / {p}" for p in peers)]
    rows = []
    for problem in problems:
        for budget in budgets:
            medians = {m: median(cache, problem, m, list(range(seeds)), budget) for m in methods}
            rows.append([problem, str(budget), *(_number(medians[m]) for m in methods),
                         *(_ratio_cell(ratio(medians[mine], medians[p]), markdown) for p in peers)])
    return _render(header, rows, markdown)


def losses(cache: dict[str, Trace], problems: list[str], budgets: list[int], seeds: int, peer: str,
           mine: str = MINE) -> list[tuple[str, int, float]]:
    """(problem, budget, ratio) where `mine`'s median regret is above the peer's."""
    out = []
    for problem in problems:
        for budget in budgets:
            r = ratio(median(cache, problem, mine, list(range(seeds)), budget),
                      median(cache, problem, peer, list(range(seeds)), budget))
            if r is not None and r > 1.0:
                out.append((problem, budget, r))
    return out


def ratio_interval(mine: np.ndarray, theirs: np.ndarray, *, level: float = 0.95, resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval of median(mine) / median(theirs): the seeds of two methods are
    independent runs, so each method's regrets are resampled on their own."""
    rng = np.random.default_rng(seed)
    a = np.median(rng.choice(mine, (resamples, len(mine))), axis=1)
    b = np.median(rng.choice(theirs, (resamples, len(theirs))), axis=1)
    ratios = [ratio(float(x), float(y)) for x, y in zip(a, b)]
    low, high = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def loss_summary(cache: dict[str, Trace], problems: list[str], budgets: list[int], seeds: int,
                 mine: str = MINE) -> str:
    """The cells where `mine`'s median is above a peer's, each with its 95% bootstrap interval;
    an interval that reaches 1 or below is a tie at this many seeds, not a loss."""
    lines, every = [], list(range(seeds))
    for peer in PEERS:
        lost, clear = losses(cache, problems, budgets, seeds, peer, mine), 0
        cells = []
        for problem, budget, r in lost:
            low, high = ratio_interval(regrets(cache, problem, mine, every, budget),  # type: ignore[arg-type]
                                       regrets(cache, problem, peer, every, budget))  # type: ignore[arg-type]
            clear += low > 1.0
            cells.append(f"{problem} at {budget} ({r:.2f}x, 95% {low:.2f}-{high:.2f})")
        lines.append(f"{mine} worse than {peer} in {len(lost)} of {len(problems) * len(budgets)}, "
                     f"{clear} with the whole 95% interval above 1: {', '.join(cells) or 'none'}")
    return "\n".join(lines)


def pair_table(cache: dict[str, Trace], problems: list[str], mine: str, theirs: str, budgets: list[int], seeds: int,
               *, markdown: bool = False) -> str:
    """Two methods on the seeds both have: median [25%, 75%] regret and the ratio of medians."""
    header = ["problem", "seeds", *(f"{m} at {b}" for b in budgets for m in (mine, theirs)),
              *(f"ratio at {b}" for b in budgets)]
    rows = []
    for problem in problems:
        both = sorted(set(seeds_of(cache, problem, mine, seeds)) & set(seeds_of(cache, problem, theirs, seeds)))
        if not both:
            continue
        cells, ratios = [], []
        for budget in budgets:
            pair = [regrets(cache, problem, m, both, budget) for m in (mine, theirs)]
            for r in pair:
                cells.append("-" if r is None else "{:.3g} [{:.3g}, {:.3g}]".format(*np.percentile(r, [50, 25, 75])))
            ratios.append(None if pair[0] is None or pair[1] is None
                          else ratio(float(np.median(pair[0])), float(np.median(pair[1]))))
        rows.append([problem, str(len(both)), *cells, *(_ratio_cell(r, markdown) for r in ratios)])
    return _render(header, rows, markdown)


def _render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def replace_between_markers(text: str, section: str, body: str) -> str:
    """Put `body` between `<!-- search_quality:SECTION -->` and `<!-- /search_quality:SECTION -->`."""
    start, end = f"<!-- search_quality:{section} -->", f"<!-- /search_quality:{section} -->"
    if start not in text or end not in text:
        raise ValueError(f"the document has no {start} ... {end} markers; add them where the table belongs")
    head, rest = text.split(start, 1)
    return head + start + "\n" + body.strip() + "\n" + end + rest.split(end, 1)[1]
