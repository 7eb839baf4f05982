"""GET /healthz (for load balancers and hosting platforms) and GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web

from bot.web.keys import app_of
from storage import stats

log = logging.getLogger(__name__)
DB_TIMEOUT_S = 5.0


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers and the runner loop (when this process runs one) turns;
    503 with the reason otherwise. Reasons never carry settings or error texts (a database
    URL may hold a password)."""
    app = app_of(request)
    checks: dict[str, str] = {}
    healthy = True
    try:
        await asyncio.wait_for(stats.ping(app.db.raw), DB_TIMEOUT_S)
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        checks["database"] = f"unreachable ({type(exc).__name__})"
        healthy = False
    alive = app.runner.alive()
    if alive is None:
        checks["runner"] = "not run in this process"
    elif alive:
        checks["runner"] = "ok"
    else:
        checks["runner"] = "stalled: its loop has not turned for over a minute"
        healthy = False
    body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    app = app_of(request)
    token = app.settings.metrics_token
    if token is not None:
        sent = request.headers.get("Authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = await app.metrics.render(
        app.db.raw,
        request.headers.get("Accept"),
        now=app.runner.clock(),
        runner_alive=app.runner.alive(),
    )
    return web.Response(body=body, headers={"Content-Type": content_type})


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]
