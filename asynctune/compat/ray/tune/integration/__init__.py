"""Ray's `ray.tune.integration`: framework callbacks that report to Tune, as thin adapters over
asynctune.integrations (each module imports its framework only when one of its names is used)."""
