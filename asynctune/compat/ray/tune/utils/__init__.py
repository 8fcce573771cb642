"""Ray's `ray.tune.utils`: the mock trainable its examples use."""

from ..._unsupported import module_getattr

__getattr__ = module_getattr(__name__, {
    "validate_save_restore": "run one short Tuner with a scheduler that pauses (HyperBand) or PBT instead",
    "wait_for_gpu": "asynctune places trials on free GPUs itself (docs/resources.md)",
    "diagnose_serialization": "asynctune names the object that cannot be pickled when run() starts",
})
