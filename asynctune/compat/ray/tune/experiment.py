"""Ray's `ray.tune.experiment.Trial`: callbacks and schedulers see asynctune's Trial."""

from asynctune import Trial

__all__ = ["Trial"]
