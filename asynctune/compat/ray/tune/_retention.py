"""CheckpointConfig(num_to_keep, checkpoint_score_attribute): keep each trial's best checkpoints by
a result key, as Ray does (asynctune's own keep_checkpoints_num keeps the latest ones)."""

from __future__ import annotations

import logging
import math
import shutil
from typing import Any

import asynctune as _at

logger = logging.getLogger(__name__)


class KeepBestCheckpoints(_at.Callback):
    """Deletes a trial's worst checkpoints beyond `num_to_keep`, ranked by `attribute`; the newest
    is never deleted (a paused, exploited or retried trial resumes from it), and a checkpoint whose
    result lacks the attribute ranks worst."""

    def __init__(self, num_to_keep: int, attribute: str, order: str) -> None:
        self.num_to_keep, self.attribute, self.order = num_to_keep, attribute, order
        self._kept: dict[str, list[tuple[float, str]]] = {}

    def on_checkpoint(self, trial: Any, checkpoint: str) -> None:
        kept = self._kept.setdefault(trial.trial_id, [])
        kept[:] = [(score, path) for score, path in kept if path != checkpoint]
        kept.append((self._score(trial.last_result or {}), checkpoint))
        while len(kept) > self.num_to_keep:
            older = kept[:-1]
            worst = min(older, key=lambda pair: pair[0])
            kept.remove(worst)
            shutil.rmtree(worst[1], ignore_errors=True)
            logger.debug("removed checkpoint %s (%s=%s)", worst[1], self.attribute, worst[0])

    def _score(self, result: dict[str, Any]) -> float:
        """Higher is better whatever the order; missing or NaN is worst."""
        value = result.get(self.attribute)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return -math.inf
        return float(value) if self.order == "max" else -float(value)
