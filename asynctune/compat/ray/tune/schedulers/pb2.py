"""Ray's `ray.tune.schedulers.pb2`: not mirrored (PB2 needs GPy and a Gaussian process bandit)."""

from ..._unsupported import module_getattr

__getattr__ = module_getattr(__name__, {"PB2": "use tune.schedulers.PopulationBasedTraining"})
