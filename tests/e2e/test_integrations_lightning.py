"""PyTorch Lightning callback in real trials: a tiny model built from its config, no downloads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

import asynctune as at
from tests.helpers.integration_faults import die_once_after_a_checkpoint

pytest.importorskip("torch", reason="torch is not installed (pip install torch; scripts/integration_check.sh does)")
pytest.importorskip("lightning", reason="lightning is not installed (pip install 'asynctune[lightning]')")

from asynctune.integrations.lightning import TuneReportCheckpointCallback, get_checkpoint_path  # noqa: E402

EPOCHS = 6


def _module_class():
    import lightning.pytorch as pl
    import torch

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))
            self.log("epoch_index", float(self.current_epoch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Tiny


def _loaders():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    return DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(x, y), batch_size=64)


def _train(config):
    import lightning.pytorch as pl
    import torch

    torch.set_num_threads(1)
    if config.get("die"):
        die_once_after_a_checkpoint(after_iteration=3)
    callback = TuneReportCheckpointCallback(config.get("metrics", {"loss": "val_loss", "epoch_index": "epoch_index"}),
                                            on=config.get("on", "validation_end"),
                                            save_checkpoints=config.get("save", True))
    trainer = pl.Trainer(max_epochs=EPOCHS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback], accelerator="cpu")
    train, val = _loaders()
    trainer.fit(_module_class()(lr=config["lr"]), train, val, ckpt_path=get_checkpoint_path())


def _val_loss(checkpoint_dir):
    import torch

    model = _module_class().load_from_checkpoint(get_checkpoint_path(checkpoint_dir))
    _, val = _loaders()
    (x, y), = val
    with torch.no_grad():
        return torch.nn.functional.mse_loss(model.net(x), y).item()


def test_each_validation_is_a_result_with_the_trainers_checkpoint(storage):
    analysis = at.run(_train, config={"lr": at.grid_search([0.01, 0.05])}, metric="loss", mode="min",
                      storage_path=storage, verbose=0)
    for trial in analysis.trials:
        results = analysis.trial_results(trial.trial_id)
        assert [r["epoch_index"] for r in results] == list(range(EPOCHS))  # once an epoch, the sanity check skipped
        assert sorted(d for d in os.listdir(trial.path) if d.startswith("checkpoint_")) == [
            f"checkpoint_{i:06d}" for i in range(1, EPOCHS + 1)]
        # The checkpoint saved with a result holds the weights that gave that result.
        assert _val_loss(os.path.join(trial.path, "checkpoint_000003")) == pytest.approx(results[2]["loss"], rel=1e-5)
    assert _val_loss(analysis.best_checkpoint) == pytest.approx(analysis.best_result["loss"], rel=1e-5)


def test_a_trial_whose_worker_dies_goes_on_from_its_lightning_checkpoint(storage):
    analysis = at.run(_train, config={"lr": 0.05, "die": True}, metric="loss", mode="min", storage_path=storage,
                      max_failures=1, verbose=0)
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    results = analysis.trial_results(trial.trial_id)
    # Lightning restored the epoch from the checkpoint: no epoch trained twice, none skipped.
    assert [r["epoch_index"] for r in results] == list(range(EPOCHS))
    assert [r["training_iteration"] for r in results] == list(range(1, EPOCHS + 1))


def test_another_hook_without_checkpoints_and_a_scheduler_stop(storage):
    analysis = at.run(_train, config={"lr": 0.05, "on": "train_epoch_end", "save": False, "metrics": ["val_loss"]},
                      metric="val_loss", mode="min", storage_path=storage, stop={"training_iteration": 2}, verbose=0)
    (trial,) = analysis.trials
    results = analysis.trial_results(trial.trial_id)
    assert len(results) == 2 and all("val_loss" in r and "epoch_index" not in r for r in results)  # only those asked
    assert not [d for d in os.listdir(trial.path) if d.startswith("checkpoint_")]


def test_a_metric_the_module_does_not_log_fails_the_trial_naming_those_it_does(storage):
    analysis = at.run(_train, config={"lr": 0.05, "metrics": {"loss": "valid_loss"}}, storage_path=storage,
                      max_failures=0, raise_on_failed_trial=False, verbose=0)
    (trial,) = analysis.trials
    assert trial.status is at.Status.ERROR
    assert "valid_loss" in trial.error and "val_loss" in trial.error


@pytest.mark.parametrize("kwargs, match", [({"on": "epoch_end"}, "on must be"), ({"on": []}, "on must be"),
                                           ({"metrics": 1}, "metrics"), ({"filename": "../x.ckpt"}, "filename")])
def test_bad_arguments_are_rejected_with_their_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TuneReportCheckpointCallback(**kwargs)


def test_the_pytorch_example_runs_both_ways(tmp_path):
    """examples/tune_pytorch.py as the README runs it, made short: plain PyTorch, then Lightning."""
    pytest.importorskip("sklearn", reason="the example's data comes with scikit-learn")
    script = os.path.join(REPO_ROOT, "examples", "tune_pytorch.py")
    done = subprocess.run([sys.executable, script, "--samples", "2", "--epochs", "2", "--storage", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("pytorch", "lightning"):
        analysis = at.ExperimentAnalysis(str(tmp_path / f"digits_{name}"))
        assert analysis.best_result["accuracy"] > 0.5 and analysis.best_checkpoint is not None
