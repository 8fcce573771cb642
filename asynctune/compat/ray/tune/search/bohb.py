"""Ray's `ray.tune.search.bohb.TuneBOHB`, with Ray's arguments, on asynctune's BOHBSearch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from asynctune import BOHBSearch

from ..._unsupported import unsupported

logger = logging.getLogger(__name__)


class TuneBOHB(BOHBSearch):
    """BOHB's model (TPE per budget); pair it with `HyperBandForBOHB`. The space comes from the
    Tuner's param_space; a ConfigSpace `space=` is not supported. From `bohb_config`,
    min_points_in_model and random_fraction are used (hpbandster's other options have no
    counterpart). `max_concurrent` > 0 wraps nothing: use ConcurrencyLimiter, as Ray advises."""

    def __init__(self, space: Any = None, bohb_config: Mapping[str, Any] | None = None, metric: str | None = None,
                 mode: str | None = None, points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
                 seed: int | None = None, max_concurrent: int = 0) -> None:
        if space is not None:
            unsupported("TuneBOHB(space=<ConfigSpace>)", "give the search space as Tuner(param_space={...}) "
                        "with tune.uniform, tune.choice, ...")
        config = dict(bohb_config or {})
        kept = {k: config.pop(k) for k in ("min_points_in_model", "random_fraction") if k in config}
        if config:
            logger.debug("TuneBOHB: ignoring bohb_config keys %s", sorted(config))
        super().__init__(metric, mode, points_to_evaluate=points_to_evaluate, seed=seed, **kept)
