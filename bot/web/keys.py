"""Where handlers find the App: one typed key on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from bot.app import App

APP: web.AppKey[App] = web.AppKey("animatebot_app", App)
# The path segment of a signed link (bot.links tokens are base64url with one dot).
TOKEN = "{token:[A-Za-z0-9_.-]{1,512}}"  # noqa: S105 - a route pattern, not a secret


def app_of(request: web.Request) -> App:
    return request.app[APP]
