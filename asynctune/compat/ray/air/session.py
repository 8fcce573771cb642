"""Ray 2.0-2.6's `ray.air.session`: the trial-side functions, the same as `tune`'s and `train`'s.

    from asynctune.compat.ray.air import session
    session.report({"loss": loss}, checkpoint=Checkpoint.from_dict({"step": step}))
"""

from __future__ import annotations

from .._unsupported import module_getattr
from ..tune._session import TuneContext, get_checkpoint, report

_context = TuneContext()
get_trial_id = _context.get_trial_id
get_trial_name = _context.get_trial_name
get_trial_dir = _context.get_trial_dir
get_trial_resources = _context.get_trial_resources
get_experiment_name = _context.get_experiment_name
get_world_size = _context.get_world_size
get_world_rank = _context.get_world_rank
get_local_rank = _context.get_local_rank
get_local_world_size = _context.get_local_world_size
get_node_rank = _context.get_node_rank

__getattr__ = module_getattr(__name__, {
    "get_dataset_shard": "Ray Data is not mirrored: load data inside the trainable, or pass it with "
                         "tune.with_parameters"})

__all__ = ["get_checkpoint", "get_experiment_name", "get_local_rank", "get_local_world_size", "get_node_rank",
           "get_trial_dir", "get_trial_id", "get_trial_name", "get_trial_resources", "get_world_rank",
           "get_world_size", "report"]
