"""Ray's `ray.tune.search.zoopt`: not mirrored."""

from ..._unsupported import module_getattr
from . import _OTHER

__getattr__ = module_getattr(__name__, {"ZOOptSearch": _OTHER})
