"""Tune a small neural network on scikit-learn's digits: a real model, 60 trials in under a minute on 2 CPUs.

    pip install -e ".[examples]" && python examples/tune_digits.py
    python examples/tune_digits.py --samples 8 --epochs 5     # a quick look
    python examples/tune_digits.py --resume                   # continue the newest run after Ctrl-C

Each trial trains an MLP one epoch at a time with partial_fit, reports validation accuracy,
and checkpoints its weights, so a scheduler may stop, pause or resume it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings

import asynctune as at


def train_mlp(config):
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    checkpoint = at.get_checkpoint()
    if checkpoint:
        model, start = pickle.loads(checkpoint["model"]), checkpoint["epoch"]
    else:
        model = MLPClassifier(hidden_layer_sizes=(config["hidden"],) * config["layers"],
                              learning_rate_init=config["lr"], alpha=config["alpha"],
                              batch_size=config["batch_size"], random_state=0)
        start = 0
    for epoch in range(start, config["epochs"]):
        model.partial_fit(x_train, y_train, classes=list(range(10)))
        accuracy = model.score(x_val, y_val)
        at.report(accuracy=accuracy, epoch=epoch + 1,
                  checkpoint={"model": pickle.dumps(model), "epoch": epoch + 1})


SPACE = {
    "hidden": at.choice([16, 32, 64, 128]),
    "layers": at.randint(1, 3),
    "lr": at.loguniform(1e-4, 1e-1),
    "alpha": at.loguniform(1e-6, 1e-2),
    "batch_size": at.choice([32, 64, 128]),
    "epochs": 30,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Tune an MLP on scikit-learn's digits")
    parser.add_argument("--samples", type=int, default=60, help="trials to run")
    parser.add_argument("--storage", default="./results", help="where the experiment directory goes")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the longest trials (ASHA's max_t)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", help="the experiment's name (default: digits_mlp, then digits_mlp_2, ... "
                                       "so that each run starts a new experiment)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the experiment --name (default: the newest digits_mlp*) after Ctrl-C or a crash")
    args = parser.parse_args()
    name = args.name or _experiment_name(args.storage, "digits_mlp", resume=args.resume)

    # ASHA stops the worst two thirds of trials at each rung (epochs 3, 9, 27).
    scheduler = at.ASHAScheduler(max_t=args.epochs, grace_period=min(3, args.epochs), reduction_factor=3)
    analysis = at.run(
        train_mlp, config={**SPACE, "epochs": args.epochs}, num_samples=args.samples, metric="accuracy", mode="max",
        scheduler=scheduler, storage_path=args.storage, name=name, resume=args.resume, seed=args.seed,
        time_budget_s=170,
    )
    best = analysis.best_result
    print(f"best validation accuracy {best['accuracy']:.4f} after {best['epoch']} epochs")
    print(f"best config: {analysis.best_config}")
    print(f"best checkpoint: {analysis.best_checkpoint}")
    print(f"results: {analysis.experiment_dir}")


def _experiment_name(storage: str, base: str, *, resume: bool) -> str:
    """A new name for each run (digits_mlp, digits_mlp_2, ...); with --resume the newest one."""
    numbers = [int(match.group(1) or 1) for match in map(re.compile(rf"{base}(?:_(\d+))?").fullmatch,
                                                         os.listdir(storage) if os.path.isdir(storage) else [])
               if match]
    number = max(numbers, default=0) + (0 if resume else 1)
    return base if number <= 1 else f"{base}_{number}"


if __name__ == "__main__":
    main()
