"""A live web dashboard: watch and compare experiments in a browser (needs `asynctune[dashboard]`).

    asynctune dashboard ~/asynctune_results          # then open http://127.0.0.1:8266/

Read-only; listens on 127.0.0.1 unless told otherwise; the page and its chart library (uPlot,
MIT, vendored under static/vendor/) are served from the package, so it works offline.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401
except ImportError:  # pragma: no cover - depends on the installed extras
    raise ImportError("the dashboard needs aiohttp: pip install 'asynctune[dashboard]'") from None

from .data import ExperimentStore, JsonlTail, NotFound
from .server import DEFAULT_PORT, is_loopback, make_app, serve, start_beside

__all__ = ["DEFAULT_PORT", "ExperimentStore", "JsonlTail", "NotFound", "is_loopback", "make_app", "serve",
           "start_beside"]
