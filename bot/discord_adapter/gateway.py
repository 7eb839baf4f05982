"""Where discord.py talks to: the REST base (`Route.BASE`) and the gateway address.

discord.py keeps both as class attributes. A plain `Client` always dials its built-in gateway
address and never asks `GET /gateway/bot` (only `AutoShardedClient` without a shard count
does), so when the operator points the REST base elsewhere (a proxy, a test server) the
gateway address must come from that base too: `use_gateway_of` asks it and sets
`DiscordWebSocket.DEFAULT_GATEWAY` (discord.py docs: "Gateway", `Client.setup_hook`).
"""

from __future__ import annotations

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.errors import SetupError

DEFAULT_API_BASE = "https://discord.com/api/v10"


class DiscordSetupError(SetupError):
    """A Discord setting the operator can fix (the token, the guild ids, the API base)."""


def no_voice() -> None:
    """The bot never joins voice: no warnings about voice libraries it does not need."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def use_api_base(base_url: str) -> None:
    """Send every REST call discord.py makes (bot-token calls, interaction callbacks and
    follow-ups alike) to `base_url`."""
    Route.BASE = base_url.rstrip("/")


def custom_api_base(base_url: str) -> bool:
    return base_url.rstrip("/") != DEFAULT_API_BASE


async def use_gateway_of(http: discord.http.HTTPClient) -> None:
    """Connect to the gateway that the configured REST base names in `GET /gateway/bot`."""
    _, url, _ = await http.get_bot_gateway()
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)


def token_refused() -> DiscordSetupError:
    return DiscordSetupError(
        "DISCORD_TOKEN was refused by Discord: copy the bot token again from the Developer "
        "Portal (your application → Bot → Reset Token) into DISCORD_TOKEN."
    )
