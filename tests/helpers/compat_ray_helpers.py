"""What the asynctune.compat.ray tests share: Ray's session set up as their scripts do."""

from __future__ import annotations

import pytest

import asynctune.compat.ray as ray


@pytest.fixture(autouse=True)
def two_cpus():
    """ray.init(num_cpus=2), as Ray's examples start; shutdown() after each test."""
    ray.init(num_cpus=2)
    yield
    ray.shutdown()
