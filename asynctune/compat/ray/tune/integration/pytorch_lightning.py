"""Ray's `ray.tune.integration.pytorch_lightning`: not mirrored."""

from ..._unsupported import module_getattr
from . import HOW

__getattr__ = module_getattr(__name__, {name: HOW for name in (
    "TuneReportCallback", "TuneReportCheckpointCallback", "TuneCallback")})
