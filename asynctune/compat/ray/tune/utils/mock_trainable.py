"""A deterministic toy `Trainable` for examples and tests, as Ray's `MyTrainableClass` is used:
its `episode_reward_mean` rises with the step as tanh(step / width) * height."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from .._trainables import Trainable


class MyTrainableClass(Trainable):
    """Reward tanh(timestep / width) * height, from config "width" (default 1) and "height" (default 1)."""

    def setup(self, config: dict[str, Any]) -> None:
        self.timestep = 0

    def step(self) -> dict[str, Any]:
        self.timestep += 1
        reward = math.tanh(self.timestep / self.config.get("width", 1)) * self.config.get("height", 1)
        return {"episode_reward_mean": reward}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        with open(os.path.join(checkpoint_dir, "state.json"), "w") as f:
            json.dump({"timestep": self.timestep}, f)

    def load_checkpoint(self, checkpoint: Any) -> None:
        with open(os.path.join(checkpoint, "state.json")) as f:
            self.timestep = json.load(f)["timestep"]
