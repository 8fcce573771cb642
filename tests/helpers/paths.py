"""Where the checkout is: tests that run its examples, README or benchmarks, or start a fresh
interpreter that must import this checkout's asynctune."""

from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
