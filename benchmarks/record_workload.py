"""Record real learning curves into a workload table for the simulated executor.

Each config of a random sample is really trained for --epochs epochs with asynctune itself
(run() on the local executor, FIFO: every trial runs to the end), and the per-epoch metrics
and times go into benchmarks/workloads/<name>.json.gz, which `SimulatedExecutor` replays.

    python benchmarks/record_workload.py digits                  # MLP on scikit-learn's digits
    python benchmarks/record_workload.py breast_cancer --configs 200
    python benchmarks/record_workload.py digits --configs 1000 --workers 8 --out my_digits.json.gz

Models are scikit-learn MLPClassifiers trained by SGD with partial_fit (one epoch per call),
so an epoch takes milliseconds and a few hundred configs x 27 epochs record in minutes on two
cores. To record another model family (a torch network on a GPU machine, say), add a
`Dataset` entry and a trainable in the same shape: report `val_error`, `val_loss` and
`train_loss` once per epoch.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import asynctune
from asynctune.executors.simulated import Workload

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")


@dataclass(frozen=True)
class Dataset:
    loader: str  # a sklearn.datasets function
    val_size: int
    widths: tuple[int, int]  # lograndint range of hidden layer widths (high exclusive)
    description: str


DATASETS = {
    "digits": Dataset("load_digits", 600, (16, 129), "8x8 handwritten digits, 1797 images, 10 classes"),
    "breast_cancer": Dataset("load_breast_cancer", 200, (4, 129), "Wisconsin breast cancer, 569 samples, 2 classes"),
}


def space_spec(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """The search space, as stored in the workload (bounds inclusive)."""
    return {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "momentum": {"type": "float", "low": 0.0, "high": 0.99, "log": False},
        "alpha": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
        "batch_size": {"type": "choice", "values": [16, 32, 64, 128, 256]},
        "width": {"type": "int", "low": dataset.widths[0], "high": dataset.widths[1] - 1, "log": True},
        "depth": {"type": "int", "low": 1, "high": 3, "log": False},
        "activation": {"type": "choice", "values": ["relu", "tanh"]},
    }


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The dataset, scaled, split into train and validation (fixed split)."""
    import sklearn.datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    dataset = DATASETS[name]
    x, y = getattr(sklearn.datasets, dataset.loader)(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=dataset.val_size, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_val), y_train, y_val


def make_trainable(name: str, epochs: int, *, checkpoint_every: int = 0):
    """Train an MLP on `name` for `epochs`, reporting after each; checkpoint every k epochs if asked.

    A restored trial (pause, PBT exploit) continues the checkpointed model with its own config's
    optimiser settings (lr, momentum, alpha, batch size); the architecture stays the model's.
    """

    def train_mlp(config: dict[str, Any]) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.metrics import log_loss
        from sklearn.neural_network import MLPClassifier

        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        x_train, x_val, y_train, y_val = load(name)
        classes = np.unique(y_train)
        checkpoint = asynctune.get_checkpoint()
        if checkpoint is not None:
            model, start, diverged = checkpoint["model"], checkpoint["epoch"], checkpoint["diverged"]
            model.set_params(learning_rate_init=config["lr"], momentum=config["momentum"], alpha=config["alpha"],
                             batch_size=config["batch_size"])
            if hasattr(model, "_optimizer"):
                model._optimizer.learning_rate = model._optimizer.learning_rate_init = config["lr"]
                model._optimizer.momentum = config["momentum"]
        else:
            model = MLPClassifier(
                hidden_layer_sizes=(config["width"],) * config["depth"], activation=config["activation"],
                solver="sgd", learning_rate_init=config["lr"], momentum=config["momentum"], nesterovs_momentum=True,
                alpha=config["alpha"], batch_size=config["batch_size"], random_state=0,
            )
            start, diverged = 0, False
        for epoch in range(start + 1, epochs + 1):
            if not diverged:
                try:
                    model.partial_fit(x_train, y_train, classes=classes)
                    proba = model.predict_proba(x_val)
                    diverged = not (np.all(np.isfinite(proba)) and math.isfinite(model.loss_))
                except (ValueError, FloatingPointError, OverflowError):
                    diverged = True
            keep = {"model": model, "epoch": epoch, "diverged": diverged} if (
                checkpoint_every and epoch % checkpoint_every == 0) else None
            if diverged:  # the weights blew up: it predicts nothing better than chance from now on
                chance = math.log(len(classes))
                asynctune.report(val_error=1 - 1 / len(classes), val_loss=chance, train_loss=chance, diverged=True,
                                 checkpoint=keep)
                continue
            asynctune.report(val_error=float(np.mean(classes[proba.argmax(1)] != y_val)),
                             val_loss=float(log_loss(y_val, proba, labels=classes)),
                             train_loss=float(model.loss_), diverged=False, checkpoint=keep)

    return train_mlp


def record(name: str, *, configs: int, epochs: int, workers: int, seed: int, storage: str) -> Workload:
    dataset = DATASETS[name]
    spec = space_spec(dataset)
    probe = Workload(name, [{k: _low(s) for k, s in spec.items()}], {"val_error": [[0.0]]}, [[0.0]],
                     metric="val_error", mode="min", space=spec)
    started = time.time()
    analysis = asynctune.run(
        make_trainable(name, epochs), config=probe.space(), num_samples=configs, metric="val_error", mode="min",
        executor=asynctune.LocalExecutor(cpus=workers), seed=seed, storage_path=storage,
        name=f"record_{name}", verbose=1,
    )
    wall = time.time() - started
    rows, curves, times = [], {"val_error": [], "val_loss": [], "train_loss": []}, []
    for trial in sorted(analysis.trials, key=lambda t: t.index):
        results = analysis.trial_results(trial.trial_id)
        if len(results) != epochs:
            print(f"skipping {trial.trial_id}: {len(results)} of {epochs} epochs ({trial.status.value})", file=sys.stderr)
            continue
        rows.append(trial.config)
        for key in curves:
            curves[key].append([r[key] for r in results])
        times.append([r["time_this_iter_s"] for r in results])
    description = (
        f"scikit-learn MLPClassifier (SGD, partial_fit = 1 epoch) on {dataset.description}; "
        f"{len(rows)} random configs (seed {seed}) x {epochs} epochs, validation split of {dataset.val_size}; "
        f"recorded with asynctune {asynctune.__version__} on {workers} workers, {platform.machine()} "
        f"{platform.processor() or ''} (python {platform.python_version()}), {wall:.0f} s wall, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}. Epoch times are as measured."
    )
    return Workload(f"mlp_{name}", rows, curves, times, metric="val_error", mode="min", space=spec,
                    description=description)


def _low(spec: dict[str, Any]) -> Any:
    return spec["values"][0] if spec["type"] == "choice" else spec["low"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--configs", type=int, default=300, help="random configs to record")
    parser.add_argument("--epochs", type=int, default=27, help="epochs per config (27 = 3^3 suits eta=3)")
    parser.add_argument("--workers", type=int, default=2, help="trials trained at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output file (default benchmarks/workloads/mlp_<dataset>.json.gz)")
    args = parser.parse_args()
    out = args.out or os.path.join(WORKLOADS, f"mlp_{args.dataset}.json.gz")
    with tempfile.TemporaryDirectory(prefix="asynctune-record-") as storage:
        workload = record(args.dataset, configs=args.configs, epochs=args.epochs, workers=args.workers,
                          seed=args.seed, storage=storage)
    workload.save(out)
    final = workload.curves["val_error"][:, -1]
    print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KiB): {workload}")
    print(f"final val_error: best {final.min():.4f}, median {np.median(final):.4f}, worst {final.max():.4f}; "
          f"epoch time: median {np.median(workload.epoch_time_s) * 1000:.1f} ms; "
          f"all configs sequentially {workload.total_time_s():.0f} s")


if __name__ == "__main__":
    main()
