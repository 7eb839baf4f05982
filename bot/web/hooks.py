"""POST /hooks/{provider}/{token}: provider callbacks, turned into `CallbackInbox` calls.

Answers: 200 for anything accepted or harmlessly ignored (so the provider stops retrying),
404 for a URL we did not sign, 401 for a bad or stale WaveSpeed signature, 503 when we cannot
check it now (the provider retries; the poll safety net covers the rest).
"""

from __future__ import annotations

from aiohttp import web

from bot.callbacks import Outcome
from bot.web.keys import TOKEN, app_of

_STATUS = {
    Outcome.APPLIED: 200,
    Outcome.WOKEN: 200,
    Outcome.IGNORED: 200,
    Outcome.BAD_TOKEN: 404,
    Outcome.BAD_SIGNATURE: 401,
    Outcome.UNAVAILABLE: 503,
}


async def wavespeed(request: web.Request) -> web.Response:
    app = app_of(request)
    if app.callbacks is None:
        raise web.HTTPNotFound()
    body = await request.read()  # bounded by the application's client_max_size
    outcome = await app.callbacks.wavespeed(request.match_info["token"], request.headers, body)
    return _answer(request, "wavespeed", outcome)


async def novita(request: web.Request) -> web.Response:
    app = app_of(request)
    if app.callbacks is None:
        raise web.HTTPNotFound()
    body = await request.read()
    outcome = await app.callbacks.novita(request.match_info["token"], body)
    return _answer(request, "novita", outcome)


def _answer(request: web.Request, provider: str, outcome: Outcome) -> web.Response:
    app_of(request).metrics.callbacks.labels(provider, outcome.value).inc()
    status = _STATUS[outcome]
    return web.json_response({"ok": status == 200, "outcome": outcome.value}, status=status)


def routes() -> list[web.RouteDef]:
    token = TOKEN
    return [
        web.post(f"/hooks/wavespeed/{token}", wavespeed),
        web.post(f"/hooks/novita/{token}", novita),
    ]
