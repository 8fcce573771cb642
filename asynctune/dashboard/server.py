"""The dashboard's web server (aiohttp): a static page and a read-only JSON API under /api/.

    GET /api/experiments                                    every experiment: status, trials, best
    GET /api/experiments/{name}                             one experiment's summary
    GET /api/experiments/{name}/trials                      its trial table (config, metric, decisions)
    GET /api/experiments/{name}/trials/{trial_id}/results   every result of one trial
    GET /api/experiments/{name}/curves[?metric=M]           all learning curves, decisions, best so far
    GET /api/experiments/{name}/best_so_far[?metric=M]      [time_s, value, trial_id] rows
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ..core.compat import timeout
from .data import ExperimentStore, NotFound, finite

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8266
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
_STORE = web.AppKey("store", ExperimentStore)
_LOOPBACK_NAMES = ("localhost",)
# Scripts and styles come only from this server: the page works offline and nothing is injected.
_CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def make_app(root: str, *, host: str = "127.0.0.1") -> web.Application:
    """The dashboard as an aiohttp application serving the experiments under `root`."""
    app = web.Application(middlewares=[_errors_and_headers, *([_loopback_hosts_only] if is_loopback(host) else [])])
    app[_STORE] = ExperimentStore(root)
    app.router.add_get("/", _index)
    app.router.add_get("/api/experiments", _experiments)
    app.router.add_get("/api/experiments/{name}", _experiment)
    app.router.add_get("/api/experiments/{name}/trials", _trials)
    app.router.add_get("/api/experiments/{name}/trials/{trial_id}/results", _results)
    app.router.add_get("/api/experiments/{name}/curves", _curves)
    app.router.add_get("/api/experiments/{name}/best_so_far", _best_so_far)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    return app


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@web.middleware
async def _errors_and_headers(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    try:
        response = await handler(request)
    except NotFound as exc:
        response = web.json_response({"error": str(exc).strip("'\"")}, status=404)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def _loopback_hosts_only(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """On loopback, answer only requests addressed to a loopback name: a web page elsewhere
    cannot point its own host name at 127.0.0.1 (DNS rebinding) and read the experiments."""
    hostname = (request.url.host or "").strip("[]")
    if not is_loopback(hostname):
        return web.json_response({"error": f"host {hostname!r} refused: the dashboard serves loopback only"},
                                 status=403)
    return await handler(request)


def _json(value: Any) -> web.Response:
    return web.json_response(finite(value))


def _json_text(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/json")


def _store(request: web.Request) -> ExperimentStore:
    return request.app[_STORE]


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"))


async def _experiments(request: web.Request) -> web.Response:
    store = _store(request)
    return _json({"root": store.root, "experiments": store.summaries()})


async def _experiment(request: web.Request) -> web.Response:
    return _json(_store(request).experiment(request.match_info["name"]).summary())


async def _trials(request: web.Request) -> web.Response:
    experiment = _store(request).experiment(request.match_info["name"])
    return _json_text(experiment.trials_json())


async def _results(request: web.Request) -> web.Response:
    experiment = _store(request).experiment(request.match_info["name"])
    return _json({"trial_id": request.match_info["trial_id"],
                  "results": experiment.results(request.match_info["trial_id"])})


async def _curves(request: web.Request) -> web.Response:
    experiment = _store(request).experiment(request.match_info["name"])
    return _json_text(experiment.curves_json(request.query.get("metric")))


async def _best_so_far(request: web.Request) -> web.Response:
    experiment = _store(request).experiment(request.match_info["name"])
    return _json_text(experiment.best_so_far_json(request.query.get("metric")))


@contextlib.asynccontextmanager
async def serve(root: str, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve the dashboard in the running event loop until the block ends; yields its URL.

    Example:
        >>> async with serve("~/asynctune_results", port=8266) as url:
        ...     print("dashboard at", url)
        ...     await asyncio.Event().wait()

    Args:
        root: A directory of experiments, or one experiment's directory.
        host: The address to listen on; anything but loopback lets others read the experiments.
        port: The TCP port; 0 picks a free one.
    """
    app = make_app(root, host=host)
    if not is_loopback(host):
        logger.warning("the dashboard listens on %s: anyone who can reach this machine can read these "
                       "experiments. Prefer the default 127.0.0.1 and an SSH port forward.", host)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        yield _url(host, runner.addresses[0][1])
    finally:
        async with timeout(5):  # closing must not hang the run that started us
            await runner.cleanup()


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def start_beside(root: str, host: str = "127.0.0.1", port: int | None = None, *,
                 experiment: str | None = None) -> tuple[str, Callable[[], None]]:
    """Serve the dashboard from a thread with its own event loop, beside a run; returns
    (url, stop). The run's loop never waits on the dashboard's file reads, and stop() ends
    the server within seconds.

    Example:
        >>> url, stop = start_beside("~/asynctune_results", experiment="digits_mlp")
        >>> try:
        ...     analysis = asynctune.run(train, ..., storage_path="~/asynctune_results", name="digits_mlp")
        ... finally:
        ...     stop()

    Args:
        root: A directory of experiments (a run's storage_path), or one experiment's directory.
        host: The address to listen on (default loopback only).
        port: The TCP port; 0 picks a free one; None (default) takes 8266, or a free port if
            8266 is taken (say, by an `asynctune dashboard` already running).
        experiment: Open this experiment's page (the URL ends in #/<experiment>); it may not
            exist yet: the page shows it as soon as its run writes experiment.json.

    Raises:
        OSError: when the port cannot be bound (in use, or not allowed).
    """
    if port is None:
        try:
            return start_beside(root, host, DEFAULT_PORT, experiment=experiment)
        except OSError:
            return start_beside(root, host, 0, experiment=experiment)
    ready = threading.Event()
    outcome: dict[str, Any] = {}

    async def main() -> None:
        outcome["loop"], outcome["done"] = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with serve(root, host=host, port=port) as url:
                outcome["url"] = url
                ready.set()
                await outcome["done"].wait()
        except BaseException as exc:
            outcome["error"] = exc
            raise
        finally:
            ready.set()

    def target() -> None:
        with contextlib.suppress(BaseException):
            asyncio.run(main())

    thread = threading.Thread(target=target, name="asynctune-dashboard", daemon=True)
    thread.start()
    ready.wait()
    if "error" in outcome:
        thread.join(5)
        raise outcome["error"]

    def stop() -> None:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                outcome["loop"].call_soon_threadsafe(outcome["done"].set)
            thread.join(10)

    url = outcome["url"] + (f"#/{urllib.parse.quote(experiment)}" if experiment else "")
    return url, stop
