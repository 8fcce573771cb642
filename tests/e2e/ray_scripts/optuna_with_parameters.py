"""OptunaSearch with a ConcurrencyLimiter, data passed with tune.with_parameters."""
import os

import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score

from asynctune.compat.ray import train, tune
from asynctune.compat.ray.tune.search import ConcurrencyLimiter
from asynctune.compat.ray.tune.search.optuna import OptunaSearch


def train_ridge(config, X=None, y=None):
    ctx = train.get_context()
    trial_id = ctx.get_trial_id()
    model = Ridge(alpha=config["alpha"], fit_intercept=config["fit_intercept"], solver=config["solver"])
    score = cross_val_score(model, X, y, cv=3, scoring="neg_mean_squared_error").mean()
    tune.report({"mse": -score, "trial": trial_id, "dir": tune.get_context().get_trial_dir()})


if __name__ == "__main__":
    X, y = make_regression(n_samples=300, n_features=20, noise=5.0, random_state=0)
    searcher = ConcurrencyLimiter(OptunaSearch(seed=7), max_concurrent=2)
    tuner = tune.Tuner(
        tune.with_parameters(train_ridge, X=X, y=y),
        param_space={
            "alpha": tune.loguniform(1e-3, 1e3),
            "fit_intercept": tune.choice([True, False]),
            "solver": tune.choice(["auto", "svd", "cholesky"]),
        },
        tune_config=tune.TuneConfig(metric="mse", mode="min", search_alg=searcher, num_samples=10),
        run_config=train.RunConfig(storage_path=os.environ["RESULTS"], name="ridge_optuna", verbose=0),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(best.config, best.metrics["mse"])
    assert best.metrics["trial"] == best.metrics["trial_id"]
    assert os.path.samefile(best.metrics["dir"], best.path)
    assert len(results) == 10 and results.num_errors == 0
    ids = {r.metrics["trial_id"] for r in results}
    assert len(ids) == 10
    print(results.get_dataframe().sort_values("mse")[["mse", "config/alpha", "config/solver"]].head())
    print("OK")
