"""Ray's `ray.tune.execution`: only the placement group factory is mirrored."""
