"""Compatibility layers: run scripts written for another tuning framework by changing their imports.

`asynctune.compat.ray` mirrors the part of Ray Tune 2.x that its documentation and examples use;
see docs/migrating_from_ray.md.
"""
