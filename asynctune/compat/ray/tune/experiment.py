"""Ray's `ray.tune.experiment.Trial`: the trial as Ray callbacks see it (`RayTrial`), with Ray's
status constants (`Trial.TERMINATED`, `Trial.ERROR`, ...) to compare `trial.status` with."""

from .callback import RayTrial as Trial

__all__ = ["Trial"]
