"""Ray Tune's API on asynctune: change `import ray` to `import asynctune.compat.ray as ray`.

    import asynctune.compat.ray as ray
    from asynctune.compat.ray import tune

    ray.init(num_cpus=4)
    tuner = tune.Tuner(train, param_space={"lr": tune.loguniform(1e-4, 1e-1)},
                       tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=8))
    print(tuner.fit().get_best_result().config)

Only the tuning part of Ray is mirrored (ray.tune, ray.train's session functions); remote
tasks, actors and the object store are not. See docs/migrating_from_ray.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._runtime import available_resources, cluster_resources, get_gpu_ids, init, is_initialized, shutdown
from ._unsupported import install_module_finder, module_getattr

_SUBMODULES = ("tune", "train", "air")
_NO_CLUSTER = ("asynctune has no tasks, actors or object store: trials run in worker processes started by "
               "asynctune.run(); pass large objects with tune.with_parameters")
_HINTS = {name: _NO_CLUSTER for name in ("remote", "get", "put", "wait", "kill", "cancel", "get_actor", "actor",
                                         "method", "nodes", "timeline", "get_runtime_context", "util", "data",
                                         "serve", "rllib", "workflow", "runtime_env")}
_missing = module_getattr(__name__, _HINTS)
install_module_finder()


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:  # `import asynctune.compat.ray as ray; ray.tune.Tuner`
        return importlib.import_module(f".{name}", __name__)
    return _missing(name)


__all__ = ["available_resources", "cluster_resources", "get_gpu_ids", "init", "is_initialized", "shutdown", "train",
           "tune"]
