"""How the Slack front door runs: Socket Mode or HTTP mode, the sink, `python -m bot slack`.

- `SLACK_APP_TOKEN` set: Socket Mode. The bot opens a WebSocket to Slack (no public URL; for
  development behind a firewall; Slack keeps such apps out of its Marketplace).
- Otherwise HTTP mode: Slack POSTs to `/slack/events`, signed with `SLACK_SIGNING_SECRET`;
  `python -m bot slack` and `serve` mount it on the bot's HTTP endpoint (WEB_HOST:WEB_PORT,
  PORT when set).

Either way the job runner runs in the same process unless RUN_WORKER=false, and every process
that runs the runner with SLACK_BOT_TOKEN set delivers Slack jobs (`add_slack_sink`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import App
from bot.chat.admin import AdminOps
from bot.chat.delivery import ChatSink
from bot.chat.presses import ButtonPresses
from bot.config import Settings
from bot.slack_adapter.door import SlackDoor
from bot.slack_adapter.listeners import Parts
from bot.slack_adapter.poster import SlackPoster
from bot.slack_adapter.web import (
    file_origins,
    require_app_token,
    require_bot_token,
    require_signing_secret,
    web_client,
)

if TYPE_CHECKING:
    from bot.cli.processes import RouteFactory, Service

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def slack_enabled(settings: Settings) -> bool:
    return settings.slack_bot_token is not None


def socket_mode(settings: Settings) -> bool:
    return settings.slack_app_token is not None


def check_settings(settings: Settings) -> None:
    """Raise SlackSetupError (one sentence: the setting and the fix) before anything runs."""
    require_bot_token(settings)
    if socket_mode(settings):
        require_app_token(settings)
    else:
        require_signing_secret(settings)


def _client(app: App) -> AsyncWebClient:
    """A Web API client on its own session, closed with the App."""
    session = aiohttp.ClientSession()
    app.resources.push_async_callback(session.close)
    return web_client(app.settings, session)


def add_slack_sink(app: App) -> None:
    """The runner's sink for Slack jobs: the Web API with the bot token, nothing else."""
    from bot.cli.processes import chat_sink

    app.sinks.register("slack", chat_sink(app, SlackPoster(_client(app))))


def slack_sink(app: App) -> tuple[ChatSink, SlackPoster]:
    """The Slack sink `add_slack_sink` registered (run_services and the tests do), and its
    poster; registered here when it is missing."""
    from bot.cli.processes import chat_sink

    sink = app.sinks.get("slack")
    if isinstance(sink, ChatSink):
        poster = sink.poster
        if isinstance(poster, SlackPoster):
            return sink, poster
    poster = SlackPoster(_client(app))
    sink = chat_sink(app, poster)
    app.sinks.register("slack", sink)
    return sink, poster


def open_door(app: App) -> SlackDoor:
    """The bolt app for this App, posting through the registered Slack sink; its lazy work
    is finished before the App closes."""
    sink, poster = slack_sink(app)
    parts = Parts(
        service=app.service,
        presses=ButtonPresses(app.service),
        admin=AdminOps(app.service),
        poster=poster,
        sink=sink,
        file_origins=file_origins(app.settings),
        max_image_bytes=app.settings.max_image_bytes,
    )
    secret = None if socket_mode(app.settings) else require_signing_secret(app.settings)
    # bolt's own client has no shared session: bolt deep-copies it for lazy listeners
    door = SlackDoor(parts, web_client(app.settings, None), signing_secret=secret)
    app.resources.push_async_callback(door.drain)
    return door


def slack_routes(app: App) -> Sequence[Any]:
    """`POST /slack/events` for the bot's HTTP endpoint (HTTP mode)."""
    door = open_door(app)
    return [web.post(EVENTS_PATH, door.handle)]


async def check_token(app: App, stop: asyncio.Event) -> None:
    """A service for `serve` in HTTP mode: the token is proved at start (a bad one stops the
    process with a sentence), then it waits; the route does the work."""
    check_settings(app.settings)
    _, poster = slack_sink(app)
    await poster.me()
    await stop.wait()


async def socket_service(app: App, stop: asyncio.Event) -> None:
    """Socket Mode until `stop`."""
    check_settings(app.settings)
    door = open_door(app)
    _, poster = slack_sink(app)
    me = await poster.me()
    handler = AsyncSocketModeHandler(
        door.bolt, app_token=require_app_token(app.settings), web_client=door.client
    )
    await handler.connect_async()
    log.info("slack: Socket Mode connected as %s in %s", me.user_id, me.team_id)
    from bot.cli.processes import announce

    announce(f"slack: Socket Mode connected to workspace {me.team_id}; Ctrl-C to stop")
    try:
        await stop.wait()
    finally:
        await handler.close_async()


def http_service() -> Service:
    """HTTP mode for `python -m bot slack`: the bot's HTTP endpoint (its limits, access log,
    /healthz) with /slack/events mounted, as `serve` runs it."""
    from bot.web import web_service

    return web_service([slack_routes])


def slack_services(settings: Settings) -> dict[str, Service]:
    """For `serve`: Socket Mode as a service; in HTTP mode the token check (the route is
    in `slack_route_factories`). A setting that cannot work raises SlackSetupError now."""
    if not slack_enabled(settings):
        return {}
    check_settings(settings)
    return {"slack": socket_service if socket_mode(settings) else check_token}


def slack_route_factories(settings: Settings) -> list[RouteFactory]:
    if not slack_enabled(settings) or socket_mode(settings):
        return []
    check_settings(settings)
    return [slack_routes]
