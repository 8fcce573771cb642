"""Ray's `ray.tune.tune_config`."""

from ._configs import TuneConfig

__all__ = ["TuneConfig"]
