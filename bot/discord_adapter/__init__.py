"""The Discord front door (discord.py): it only translates.

Discord interactions become `AnimateRequest`s and `Actor`s (`events`), go to the service and
to `bot.chat` (`front`, with the commands in `commands` and `admin_commands`), and what comes
back becomes Discord messages, buttons and forms (`render`, `views`). Delivery goes through
the bot token over REST (`poster`), so a worker without a gateway delivers too.

    discord_poster(app)    how the runner's chat sink posts Discord jobs (add_chat_sinks)
    discord_service(...)   the gateway client as a long-running service (python -m bot discord)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import discord

from bot.app import App
from bot.chat.delivery import ChatSink
from bot.config import Settings
from bot.discord_adapter.client import make_client
from bot.discord_adapter.front import DiscordFrontDoor
from bot.discord_adapter.gateway import DiscordSetupError, token_refused, use_api_base
from bot.discord_adapter.poster import DiscordPoster, RestClient

log = logging.getLogger(__name__)

__all__ = ["DiscordSetupError", "discord_poster", "discord_service", "require_token"]


def require_token(settings: Settings) -> str:
    """The bot token, or DiscordSetupError (one sentence) when it is not set."""
    if settings.discord_token is None:
        raise DiscordSetupError(
            "DISCORD_TOKEN is not set: create a bot in the Discord Developer Portal and put "
            "its token in DISCORD_TOKEN (README, Discord)."
        )
    return settings.discord_token.get_secret_value()


def discord_poster(app: App) -> DiscordPoster:
    """What the runner's chat sink posts Discord jobs with: the bot token over REST, with a
    client that is closed with the App."""
    use_api_base(app.settings.discord_api_base_url)
    rest = RestClient(require_token(app.settings))
    app.resources.push_async_callback(rest.close)
    return DiscordPoster(rest)


def discord_service(
    ready: Callable[[str], None] = lambda line: None,
) -> Callable[[App, asyncio.Event], Coroutine[Any, Any, None]]:
    """`python -m bot discord` as a service for `run_services`: the gateway client until
    `stop`; then the interactions in hand are finished and the client closed."""

    async def run(app: App, stop: asyncio.Event) -> None:
        from bot.cli.processes import chat_sink

        token = require_token(app.settings)
        use_api_base(app.settings.discord_api_base_url)
        sink = app.sinks.get("discord")
        if not isinstance(sink, ChatSink):  # run_services registers it (add_chat_sinks)
            sink = chat_sink(app, discord_poster(app))
            app.sinks.register("discord", sink)
        front = DiscordFrontDoor(app, sink)
        client = make_client(
            front,
            api_base=app.settings.discord_api_base_url,
            guild_ids=app.settings.discord_guild_ids,
            shards=app.settings.discord_shards,
            ready=ready,
        )
        async with client:
            gateway = asyncio.create_task(client.start(token), name="discord-gateway")
            stopped = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({gateway, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                await front.drain()
                await client.close()
            try:
                await gateway
            except discord.LoginFailure:
                raise token_refused() from None
            except aiohttp.ClientConnectionError as exc:
                raise DiscordSetupError(
                    f"Could not reach Discord at {app.settings.discord_api_base_url} ({exc}): "
                    "check the network, or DISCORD_API_BASE_URL if you set it."
                ) from None
            except (asyncio.CancelledError, discord.ConnectionClosed):
                if not stop.is_set():
                    raise

    return run
