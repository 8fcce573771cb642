"""Clear errors for the parts of Ray that asynctune.compat.ray does not mirror."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from ...errors import AsynctuneError

GUIDE = "see docs/migrating_from_ray.md"


class UnsupportedRayFeature(AsynctuneError, NotImplementedError):
    """A Ray name or argument that the compatibility layer knows but does not support.

    Not an AttributeError on purpose: `from ray.tune import X` would turn that into a bare
    "cannot import name" and lose the hint.
    """


def unsupported(what: str, instead: str) -> NoReturn:
    raise UnsupportedRayFeature(f"{what} is not supported by asynctune.compat.ray; {instead} ({GUIDE})")


def module_getattr(module: str, hints: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__: known Ray names raise with their asynctune way, others an
    AttributeError that says where the mirror ends."""
    ray_name = module.replace("asynctune.compat.", "")

    def __getattr__(name: str) -> Any:
        if name in hints:
            unsupported(f"{ray_name}.{name}", hints[name])
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}: asynctune.compat.ray mirrors only part "
                             f"of {ray_name}, and {name} is not in it; asynctune's own API is asynctune.run(...) "
                             f"({GUIDE})")

    return __getattr__


_MODULE_HINTS = {
    "rllib": "RLlib is not mirrored: asynctune tunes training functions and Trainable classes; call your RL "
             "library's training loop inside a trainable that calls tune.report",
    "tune.examples": "Ray's example modules are not part of asynctune: copy the function you need into your script",
    "data": "Ray Data is not mirrored: load data inside the trainable, or pass it with tune.with_parameters",
    # Ray Train's framework modules: their trainers are not mirrored; each names the Tune way for it
    "train.lightning": "Ray Train's LightningTrainer / RayTrainReportCallback / prepare_trainer are not mirrored: "
                       "call trainer.fit in a function trainable(config) with "
                       "ray.tune.integration.pytorch_lightning.TuneReportCheckpointCallback",
    "train.huggingface": "Ray Train's Transformers helpers are not mirrored: run the Trainer in a function "
                         "trainable(config) with asynctune.integrations.transformers.TuneReportCallback",
    "train.tensorflow": "Ray Train's TensorflowTrainer is not mirrored: call model.fit in a function "
                        "trainable(config) with ray.air.integrations.keras.ReportCheckpointCallback",
    "train.torch": "Ray Train's TorchTrainer / prepare_model / prepare_data_loader are not mirrored: run the torch "
                   "training loop in a function trainable(config) that calls tune.report (one process per trial)",
    "train": "Ray Train's framework trainers are not mirrored: write the training loop as a trainable(config) "
             "that calls tune.report",
}


class MissingRayModuleFinder:
    """Last on sys.meta_path: an import of a Ray module that asynctune.compat.ray does not mirror
    (`from asynctune.compat.ray.rllib.algorithms.ppo import PPO`) raises UnsupportedRayFeature
    naming it, not a bare ModuleNotFoundError."""

    prefix = "asynctune.compat.ray."

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if not fullname.startswith(self.prefix):
            return None
        ray_name = "ray." + fullname[len(self.prefix):]
        rest = fullname[len(self.prefix):]
        hint = next((h for key, h in _MODULE_HINTS.items() if rest == key or rest.startswith(key + ".")),
                    "asynctune's own API is asynctune.run(...)")
        unsupported(f"the module {ray_name}", hint)


def install_module_finder() -> None:
    import sys
    if not any(isinstance(finder, MissingRayModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MissingRayModuleFinder())
