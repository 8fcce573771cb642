"""Hugging Face Transformers: report each evaluation of a `Trainer`, with the checkpoint it saved.

`pip install 'asynctune[transformers]'` (transformers with torch and accelerate).

A trainable builds its `Trainer` as usual, adds `TuneReportCallback()`, and resumes with
`trainer.train(resume_from_checkpoint=get_checkpoint_path())`:

    def train(config):
        args = TrainingArguments(output_dir=os.path.join(asynctune.get_trial_dir(), "hf"),
                                 learning_rate=config["lr"], num_train_epochs=3,
                                 eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
                                 report_to=[], disable_tqdm=True)
        trainer = Trainer(model=make_model(config), args=args, train_dataset=train, eval_dataset=valid,
                          callbacks=[TuneReportCallback({"loss": "eval_loss"})])
        trainer.train(resume_from_checkpoint=get_checkpoint_path())
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._common import checkpoint_file, metric_names, require, select_metrics

transformers = require("transformers", "transformers", "asynctune.integrations.transformers")

_OWNER = "transformers TuneReportCallback"
# What marks a directory as a Trainer checkpoint (Trainer writes it into every checkpoint-<step>/).
TRAINER_STATE = "trainer_state.json"


class TuneReportCallback(transformers.TrainerCallback):
    """Reports each evaluation's metrics (`eval_loss`, `eval_accuracy`, ...) to asynctune, with
    the checkpoint the Trainer saves right after it.

    With `checkpoint=True` (the default) results are reported when the Trainer saves, which it
    does right after evaluating when `save_strategy` and `save_steps` match `eval_strategy` and
    `eval_steps`; the checkpoint directory (`output_dir/checkpoint-<step>`: weights, optimizer,
    scheduler, RNG states, trainer state) becomes asynctune's checkpoint. `trainer.train(
    resume_from_checkpoint=get_checkpoint_path())` then continues a paused, retried or
    resumed trial at the step it was saved. Each result is one evaluation, so `max_t` counts
    evaluations. A scheduler's STOP or PAUSE ends `trainer.train` there.

    Example:
        >>> trainer = Trainer(model, args, train_dataset=train, eval_dataset=valid,
        ...                   callbacks=[TuneReportCallback({"loss": "eval_loss"})])

    Args:
        metrics: None reports every metric of the evaluation (and the latest training `loss`);
            a name or a list reports those; a dict {reported name: Trainer's name} renames them.
        checkpoint: Report with the Trainer's checkpoint (False: report at each evaluation,
            with no checkpoint; then the Trainer need not save at all).
    """

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, *,
                 checkpoint: bool = True) -> None:
        self._names = metric_names(metrics, _OWNER)
        self.checkpoint = bool(checkpoint)
        self._pending: dict[str, float] | None = None  # the last evaluation, not yet reported
        self._logged: dict[str, float] = {}  # the latest training logs (loss, learning_rate, ...)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.checkpoint:
            return
        eval_strategy, save_strategy = _strategy(args.eval_strategy), _strategy(args.save_strategy)
        if eval_strategy == "no":
            raise ValueError(f"{_OWNER}: the Trainer never evaluates (eval_strategy='no'); set eval_strategy "
                             "to 'epoch' or 'steps', and save_strategy to the same")
        if save_strategy != eval_strategy or (eval_strategy == "steps" and args.save_steps != args.eval_steps):
            raise ValueError(
                f"{_OWNER}: results are reported with the checkpoint saved right after each evaluation, so "
                f"save_strategy and save_steps must match eval_strategy and eval_steps (got "
                f"eval_strategy={eval_strategy!r}, eval_steps={args.eval_steps}, save_strategy={save_strategy!r}, "
                f"save_steps={args.save_steps}); or pass checkpoint=False to report without checkpoints")

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._logged.update({k: float(v) for k, v in (logs or {}).items()
                             if isinstance(v, (int, float)) and not k.startswith("eval_")})

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        logged = {**self._logged, **{k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}}
        logged.setdefault("epoch", float(state.epoch or 0))
        self._pending = select_metrics(logged, self._names, _OWNER)
        if not self.checkpoint:
            self._report(None)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.checkpoint or self._pending is None or not state.is_world_process_zero:
            return
        saved = os.path.join(args.output_dir, f"{transformers.trainer_utils.PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if not os.path.isfile(os.path.join(saved, TRAINER_STATE)):
            raise FileNotFoundError(f"{_OWNER}: the Trainer saved no checkpoint at {saved}")
        self._report(saved)

    def _report(self, checkpoint_dir: str | None) -> None:
        from ..worker.session import report

        metrics, self._pending = self._pending, None
        report(metrics, checkpoint=checkpoint_dir)  # the directory is copied into the trial's checkpoint


def get_checkpoint_path(checkpoint: Any = None) -> str | None:
    """The Trainer checkpoint to resume from, for `trainer.train(resume_from_checkpoint=)` or
    `AutoModel.from_pretrained`: `checkpoint`, or by default the trial's `asynctune.get_checkpoint()`;
    None on a fresh start."""
    path = checkpoint_file(TRAINER_STATE, checkpoint)
    return None if path is None else os.path.dirname(path)


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))
