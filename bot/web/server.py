"""The endpoint itself: routes, limits, the access log, and the service `web`/`serve` run.

Hardening: only the routes below (and those a chat front door mounts) exist; no static
files, no listings. Bodies are limited to MAX_BODY_BYTES, each request to HANDLER_TIMEOUT_S;
an unexpected error is a bare 500 (the trace goes to the log, never to the client). URL tokens
are secrets: the access log names the route pattern (`/c/{token}`), never the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from bot.app import App
from bot.cli.processes import RouteFactory, Service, announce
from bot.web import files, hooks, status
from bot.web.keys import APP

log = logging.getLogger(__name__)
access_log = logging.getLogger("bot.web.access")

MAX_BODY_BYTES = 1024 * 1024  # a callback is a few KB; Slack events are smaller still
HANDLER_TIMEOUT_S = 15.0  # providers give up on a callback after 5-20 s anyway
KEEPALIVE_S = 30.0
CLIP_PURGE_EVERY_S = 3600.0
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        async with asyncio.timeout(HANDLER_TIMEOUT_S):
            response = await handler(request)
    except web.HTTPException as exc:
        for name, value in _HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    except TimeoutError:
        log.warning("%s %s took over %.0f s", request.method, _route(request), HANDLER_TIMEOUT_S)
        return web.json_response({"error": "timed out"}, status=503, headers=_HEADERS)
    except Exception:
        log.exception("%s %s failed", request.method, _route(request))
        return web.json_response({"error": "internal error"}, status=500, headers=_HEADERS)
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "<no route>"


class RouteAccessLogger(AbstractAccessLogger):
    """One line per request with the route pattern, never the path (it holds tokens)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = "<no route>"
        if isinstance(request, web.Request):
            route = _route(request)
        self.logger.info(
            "%s %s %d %.1f ms", request.method, route, response.status, time * 1000
        )


def build_web_app(app: App, extra: Sequence[RouteFactory] = ()) -> web.Application:
    """The aiohttp application: our routes, then each front door's (`RouteFactory`)."""
    web_app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[guard])
    web_app[APP] = app
    web_app.add_routes([*hooks.routes(), *files.routes(), *status.routes()])
    for factory in extra:
        web_app.add_routes(list(factory(app)))
    return web_app


def make_runner(app: App, routes: Sequence[RouteFactory] = ()) -> web.AppRunner:
    """The aiohttp runner with our access log and limits; the caller binds it to a site."""
    return web.AppRunner(
        build_web_app(app, routes),
        handle_signals=False,
        access_log_class=RouteAccessLogger,
        access_log=access_log,
        keepalive_timeout=KEEPALIVE_S,
    )


# After the endpoint (re)starts, jobs with the provider are looked at within this many seconds.
CATCH_UP_S = 30.0


def web_service(
    routes: Sequence[RouteFactory] = (), *, say: Callable[[str], None] = announce
) -> Service:
    """The endpoint as a `run_services` part: listens on WEB_HOST and PORT (or WEB_PORT),
    says where on stdout, purges expired clips hourly, and stops with the process."""

    async def serve(app: App, stop: asyncio.Event) -> None:
        settings = app.settings
        host = settings.web_host
        port = settings.port if settings.port is not None else settings.web_port
        runner = make_runner(app, routes)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, shutdown_timeout=5.0)
            try:
                await site.start()
            except OSError as exc:
                raise RuntimeError(
                    f"the web endpoint cannot listen on {host}:{port} ({exc.strerror}); "
                    "set WEB_HOST/WEB_PORT (or PORT) to a free address"
                ) from None
            bound = runner.addresses[0][1] if runner.addresses else port
            say(f"web endpoint listening on http://{host}:{bound} ({_callbacks_note(app)})")
            if app.links is not None and app.links.base_url is not None:
                # callbacks sent while no endpoint listened are lost: look at those jobs soon
                caught = await app.db.jobs.catch_up(within_s=CATCH_UP_S)
                if caught:
                    log.info("looking again within %.0f s at %d job(s)", CATCH_UP_S, caught)
                    app.runner.wake()
            purger = asyncio.create_task(_purge_clips(app, stop), name="clip-purge")
            try:
                await stop.wait()
            finally:
                purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purger
        finally:
            await runner.cleanup()

    return serve


def _callbacks_note(app: App) -> str:
    links = app.links
    if links is None or links.base_url is None:
        return "PUBLIC_BASE_URL unset: no provider callbacks, jobs are polled"
    return f"provider callbacks at {links.base_url}/hooks/..."


async def _purge_clips(app: App, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(app.clips.purge)
        except OSError as exc:
            log.warning("clip purge failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CLIP_PURGE_EVERY_S)
