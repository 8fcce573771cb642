"""Hugging Face Trainer with TuneReportCallback in real trials: a tiny BERT built from its config, no downloads."""

from __future__ import annotations

import os

import pytest

import asynctune as at
from tests.helpers.integration_faults import die_once_after_a_checkpoint

pytest.importorskip("torch", reason="torch is not installed (pip install torch; scripts/integration_check.sh does)")
pytest.importorskip("transformers", reason="transformers is not installed (pip install 'asynctune[transformers]')")
pytest.importorskip("accelerate", reason="the Trainer needs accelerate (pip install 'asynctune[transformers]')")

from asynctune.integrations.transformers import TuneReportCallback, get_checkpoint_path  # noqa: E402

EPOCHS = 3


def _model():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    return BertForSequenceClassification(config)


def _dataset(seed):
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 20, (48, 8), generator=generator)
    labels = (ids[:, 0] > 10).long()  # learnable: the first token decides
    return [{"input_ids": i, "attention_mask": torch.ones(8, dtype=torch.long), "labels": l}
            for i, l in zip(ids, labels)]


def _train(config):
    import torch
    from transformers import Trainer, TrainingArguments

    torch.set_num_threads(1)
    if config.get("die"):
        die_once_after_a_checkpoint(after_iteration=2)
    save = config.get("save_strategy", "epoch")
    args = TrainingArguments(
        output_dir=os.path.join(at.get_trial_dir(), "hf"), learning_rate=config["lr"], num_train_epochs=EPOCHS,
        per_device_train_batch_size=8, eval_strategy="epoch", save_strategy=save, save_total_limit=1,
        report_to=[], disable_tqdm=True, use_cpu=True, seed=0, logging_strategy="epoch")
    trainer = Trainer(model=_model(), args=args, train_dataset=_dataset(0), eval_dataset=_dataset(1),
                      callbacks=[TuneReportCallback({"loss": "eval_loss", "epoch": "epoch"},
                                                    checkpoint=config.get("checkpoint", True))])
    trainer.train(resume_from_checkpoint=get_checkpoint_path())


def _eval_loss(checkpoint_dir):
    import torch
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(get_checkpoint_path(checkpoint_dir)).eval()
    data = _dataset(1)
    with torch.no_grad():
        out = model(input_ids=torch.stack([d["input_ids"] for d in data]),
                    attention_mask=torch.stack([d["attention_mask"] for d in data]),
                    labels=torch.stack([d["labels"] for d in data]))
    return out.loss.item()


def test_each_evaluation_is_a_result_with_the_checkpoint_saved_after_it(storage):
    analysis = at.run(_train, config={"lr": at.grid_search([1e-3, 5e-3])}, metric="loss", mode="min",
                      storage_path=storage, verbose=0)
    for trial in analysis.trials:
        results = analysis.trial_results(trial.trial_id)
        assert [r["epoch"] for r in results] == [1.0, 2.0, 3.0]
        checkpoints = sorted(d for d in os.listdir(trial.path) if d.startswith("checkpoint_"))
        assert checkpoints == ["checkpoint_000001", "checkpoint_000002", "checkpoint_000003"]
        # Eval batches are 8 examples and the loss their mean: equal up to float rounding.
        assert _eval_loss(os.path.join(trial.path, "checkpoint_000002")) == pytest.approx(results[1]["loss"], rel=1e-4)
    assert _eval_loss(analysis.best_checkpoint) == pytest.approx(analysis.best_result["loss"], rel=1e-4)


def test_a_trial_whose_worker_dies_resumes_the_trainer_from_its_checkpoint(storage):
    analysis = at.run(_train, config={"lr": 5e-3, "die": True}, metric="loss", mode="min", storage_path=storage,
                      max_failures=1, verbose=0)
    (trial,) = analysis.trials
    assert trial.status is at.Status.TERMINATED and trial.num_failures == 1
    results = analysis.trial_results(trial.trial_id)
    assert [r["epoch"] for r in results] == [1.0, 2.0, 3.0]  # the Trainer went on at epoch 3, not from 1
    assert [r["training_iteration"] for r in results] == [1, 2, 3]


def test_saving_out_of_step_with_evaluating_is_an_error_that_says_how_to_fix_it(storage):
    analysis = at.run(_train, config={"lr": 1e-3, "save_strategy": "no"}, storage_path=storage, max_failures=0,
                      raise_on_failed_trial=False, verbose=0)
    (trial,) = analysis.trials
    assert trial.status is at.Status.ERROR and "save_strategy" in trial.error and "checkpoint=False" in trial.error


def test_without_checkpoints_each_evaluation_is_reported(storage):
    analysis = at.run(_train, config={"lr": 1e-3, "save_strategy": "no", "checkpoint": False}, storage_path=storage,
                      verbose=0)
    (trial,) = analysis.trials
    assert [r["epoch"] for r in analysis.trial_results(trial.trial_id)] == [1.0, 2.0, 3.0]
    assert trial.checkpoint is None


def test_bad_metrics_are_rejected():
    with pytest.raises(ValueError, match="metrics"):
        TuneReportCallback(metrics=[1])
