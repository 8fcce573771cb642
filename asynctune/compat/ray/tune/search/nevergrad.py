"""Ray's `ray.tune.search.nevergrad`: not mirrored."""

from ..._unsupported import module_getattr
from . import _OTHER

__getattr__ = module_getattr(__name__, {"NevergradSearch": _OTHER})
