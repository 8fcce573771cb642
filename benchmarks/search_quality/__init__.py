"""How good are the configs the searchers find, early and late? Anytime simple regret.

Each searcher is driven directly in a sequential loop (suggest -> evaluate -> on_trial_complete),
so this measures search quality, not the executor. For every problem, method and seed it runs
the largest budget once and reads the smaller budgets off the same run (a sequential search's
first 25 evaluations do not depend on whether it will be given 100).

Methods (peers.py): `random` (RandomSearch), `TPESearch`, `SkOptSearch`, and when installed
`optuna-tpe` (Optuna's TPESampler, defaults plus the seed), `hyperopt-tpe` (hyperopt's
tpe.suggest through fmin) and `gp_minimize` (scikit-optimize, not on conditional spaces), each
searching the same space (the mapping is in peers.py's docstring).

Figure: simple regret, f(recommended config) - the known minimum, where the recommended config
after n evaluations is the one with the best value seen so far; on a noisy problem the searcher
sees f + noise and the regret is that of the recommended config's noiseless value.

The suite (problems.py), split in two halves that each cover every category:

  category     tuning (used to choose TPESearch's settings)   heldout (reported apart, never used to choose)
  continuous   branin (2-D), rosenbrock (2-D valley),        ackley5 (5-D multimodal), rosenbrock6 (6-D
               hartmann6 (6-D), levy4 (4-D multimodal)       valley), styblinski_tang10 (10-D multimodal)
  mixed        mixed_trap (a trap category), mixed_interact  mixed_cats (4 categoricals: 4, 3, 3, 2
               (issue 33: categoricals of 5 and 3 that       choices, interacting with each other and
               interact, log-float, float, log-int, int),    with a float and a log-float; an int)
               mixed_pipeline (4 categoricals: 4, 3, 3, 2,
               interacting, moving a log-float and a float),
               mixed_flags (5 categoricals: 3, 3, 2, 2, 4;
               a pair, an xor pair, one that does not matter)
  conditional  cond_models (3 model families, own params)    cond_optimizers (3 optimizers, own params,
                                                             a shared lr whose best value depends on the branch)
  integer      int_quadratic (6 ints, one log-scale)         int_ripple (5 ints with local minima, a log-int)
  noisy        noisy_branin (noise sd 0.5)                   noisy_hartmann6 (noise sd 0.1)

`sgd_digits` (scikit-learn's SGDClassifier on load_digits; the figure is the held-out error) is
in neither half: one evaluation trains a model.

Raw traces are cached in benchmarks/results/*.json (traces.py says what a trace holds), so the
tables are regenerated without rerunning, and a run adds only what the cache lacks. After a
change to TPESearch, `--rerun` it (or `--tag new` to store it as "TPESearch [new]" beside the
cached one). Run from the repository root:

    python -m benchmarks.search_quality --workers 2                  # the suite: 100 seeds, both halves
    python -m benchmarks.search_quality --half tuning --methods TPESearch --rerun
    python -m benchmarks.search_quality --table-only --docs docs/searchers.md   # tables into the docs
    python -m benchmarks.search_quality --workers 2 --methods SkOptSearch gp_minimize --seeds 5 \\
        --problems branin rosenbrock levy4 mixed_trap hartmann6 int_quadratic   # into search_quality_gp.json
    python -m benchmarks.search_quality --timing-only                # TPESearch.suggest's CPU time
"""
