"""The bot's own HTTP endpoint (aiohttp): provider callbacks, signed image and clip links,
health and metrics, and the routes chat front doors mount (Slack's /slack/events)."""

from bot.web.server import build_web_app, make_runner, web_service

__all__ = ["build_web_app", "make_runner", "web_service"]
