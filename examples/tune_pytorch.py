"""Tune a PyTorch network on scikit-learn's digits with ASHA; then the same network through Lightning.

    pip install -e ".[examples,lightning]"            # torch, lightning and scikit-learn
    python examples/tune_pytorch.py                    # plain PyTorch, then Lightning
    python examples/tune_pytorch.py --only lightning --samples 4 --epochs 4

Each trial trains one epoch at a time, reports validation loss and accuracy, and checkpoints
its weights and optimizer every epoch, so ASHA can stop it and a retry or a resume picks it up
where it was. Trials run on CPU, one core each; with GPUs, each trial gets half of one
(`--gpu-fraction`), so two trials share a GPU.
"""

from __future__ import annotations

import argparse

import asynctune as at


def load_digits_tensors():
    """Digits (8x8 images, 10 classes) standardised, as train and validation tensors."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return (torch.tensor(scaler.transform(x_train), dtype=torch.float32), torch.tensor(y_train),
            torch.tensor(scaler.transform(x_val), dtype=torch.float32), torch.tensor(y_val))


def make_net(config):
    from torch import nn

    layers, width = [], 64
    for _ in range(config["layers"]):
        layers += [nn.Linear(width, config["hidden"]), nn.ReLU(), nn.Dropout(config["dropout"])]
        width = config["hidden"]
    return nn.Sequential(*layers, nn.Linear(width, 10))


# Plain PyTorch ------------------------------------------------------------------------------------


def train_pytorch(config):
    import torch
    from torch.nn.functional import cross_entropy
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)  # one core per trial: the trials run side by side
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the GPU asynctune placed the trial on
    x_train, y_train, x_val, y_val = (t.to(device) for t in load_digits_tensors())
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=config["batch_size"], shuffle=True)
    net = make_net(config).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config["lr"])
    start = 0
    if (checkpoint := at.get_checkpoint()) is not None:  # after a retry, a pause or a resume
        net.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start = checkpoint["epoch"]
    for epoch in range(start, config["epochs"]):
        net.train()
        for x, y in loader:
            optimizer.zero_grad()
            cross_entropy(net(x), y).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            logits = net(x_val)
            loss = cross_entropy(logits, y_val).item()
            accuracy = (logits.argmax(1) == y_val).float().mean().item()
        at.report(loss=loss, accuracy=accuracy, epoch=epoch + 1, checkpoint={
            "model": {k: v.cpu() for k, v in net.state_dict().items()},
            "optimizer": optimizer.state_dict(), "epoch": epoch + 1})


# The same network through Lightning -----------------------------------------------------------------


def train_lightning(config):
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from asynctune.integrations.lightning import TuneReportCheckpointCallback, get_checkpoint_path

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x_train, y_train, x_val, y_val = load_digits_tensors()
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=config["batch_size"], shuffle=True)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=len(x_val))
    trainer = pl.Trainer(
        max_epochs=config["epochs"], accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[TuneReportCheckpointCallback({"loss": "val_loss", "accuracy": "val_accuracy"})])
    trainer.fit(_lightning_module()(config), train_loader, val_loader, ckpt_path=get_checkpoint_path())


def _lightning_module():
    """The LightningModule class, defined on first use so that plain PyTorch runs need no lightning."""
    import lightning.pytorch as pl
    import torch
    from torch.nn.functional import cross_entropy

    class DigitsModule(pl.LightningModule):
        def __init__(self, config):
            super().__init__()
            self.save_hyperparameters(config)
            self.net = make_net(config)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return cross_entropy(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", cross_entropy(logits, y))
            self.log("val_accuracy", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])

    return DigitsModule


SPACE = {
    "hidden": at.choice([32, 64, 128]),
    "layers": at.randint(1, 3),
    "dropout": at.uniform(0.0, 0.3),
    "lr": at.loguniform(1e-4, 3e-2),
    "batch_size": at.choice([32, 64, 128]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Tune a PyTorch network on scikit-learn's digits")
    parser.add_argument("--only", choices=["pytorch", "lightning"], help="run one of the two (default: both)")
    parser.add_argument("--samples", type=int, default=12, help="trials per run")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of the longest trials (ASHA's max_t)")
    parser.add_argument("--gpu-fraction", type=float, default=0.5, help="of one GPU per trial, when there are GPUs")
    parser.add_argument("--storage", default="./results", help="where the experiment directories go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    resources = {"cpu": 1, "gpu": args.gpu_fraction} if torch.cuda.is_available() else {"cpu": 1}
    runs = {"pytorch": train_pytorch, "lightning": train_lightning}
    for name in [args.only] if args.only else list(runs):
        # ASHA keeps the best third at each rung (epochs 2, 6, 18 with the defaults).
        scheduler = at.ASHAScheduler(max_t=args.epochs, grace_period=min(2, args.epochs), reduction_factor=3)
        analysis = at.run(runs[name], config={**SPACE, "epochs": args.epochs}, num_samples=args.samples,
                          metric="accuracy", mode="max", scheduler=scheduler, resources_per_trial=resources,
                          storage_path=args.storage, name=f"digits_{name}", seed=args.seed, verbose=1)
        best = analysis.best_result
        print(f"{name}: best validation accuracy {best['accuracy']:.4f} at epoch {best['training_iteration']}, "
              f"config {analysis.best_config}, checkpoint {analysis.best_checkpoint}")


if __name__ == "__main__":
    main()
