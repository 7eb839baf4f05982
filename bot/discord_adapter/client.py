"""The discord.py client: commands, persistent buttons and the form, and where it connects.

`setup_hook` runs once after login and before the gateway connects (discord.py docs,
`Client.setup_hook`): it takes the gateway address from the configured REST base when that
is not Discord's own, registers the dynamic buttons, and syncs the commands - to the servers
in DISCORD_GUILD_IDS (at once) or globally (Discord may take up to an hour to show them).

Intents: only `guilds` (not privileged): slash commands, buttons and forms need none, and the
guild cache gives each server's boost tier, hence its upload limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import discord
from discord import app_commands

from bot.discord_adapter.admin_commands import admin_group
from bot.discord_adapter.commands import member_commands
from bot.discord_adapter.front import DiscordFrontDoor
from bot.discord_adapter.gateway import (
    DiscordSetupError,
    custom_api_base,
    no_voice,
    use_gateway_of,
)
from bot.discord_adapter.views import AnimateButton

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 512


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    return wanted


class _Hooks:
    """What both client classes do (a plain client and the auto-sharded one)."""

    def __init__(
        self,
        client: discord.Client,
        front: DiscordFrontDoor,
        *,
        api_base: str,
        guild_ids: Sequence[int],
        ready: Callable[[str], None],
    ) -> None:
        self.client = client
        self.front = front
        self.api_base = api_base
        self.guild_ids = tuple(guild_ids)
        self.ready = ready
        self.tree = app_commands.CommandTree(client)
        self.tree.on_error = self._on_error  # type: ignore[method-assign]

    async def setup(self) -> None:
        if custom_api_base(self.api_base):
            await use_gateway_of(self.client.http)
        self.client.add_dynamic_items(AnimateButton)
        for command in member_commands(self.front):
            self.tree.add_command(command)
        self.tree.add_command(admin_group(self.front))
        await self.sync()

    async def sync(self) -> None:
        if not self.guild_ids:
            await self.tree.sync()
            return
        for guild_id in self.guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                await self.tree.sync(guild=guild)
            except discord.Forbidden:
                raise DiscordSetupError(
                    f"DISCORD_GUILD_IDS lists server {guild_id}, where the bot is not "
                    "installed with the applications.commands scope: invite it with the URL in "
                    "the README, or remove the id."
                ) from None

    async def on_ready(self) -> None:
        user = self.client.user
        self.ready(f"discord: logged in as {user} in {len(self.client.guilds)} server(s)")

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.type is discord.InteractionType.modal_submit:
            try:
                await self.front.submit_form(interaction)
            except Exception as exc:
                await self.front.on_error(interaction, exc)

    async def _on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        await self.front.on_error(interaction, original)


class _AnimateEvents(discord.Client):
    """What both clients (plain and sharded) do: the same hooks, whatever the base class
    (`AnimateShardedClient` puts discord.py's `AutoShardedClient` between this and
    `discord.Client`, so `super().__init__` is the sharded one's there)."""

    def __init__(
        self,
        front: DiscordFrontDoor,
        *,
        api_base: str,
        guild_ids: Sequence[int],
        ready: Callable[[str], None],
        **options: Any,
    ) -> None:
        super().__init__(intents=intents(), **options)
        self.hooks = _Hooks(self, front, api_base=api_base, guild_ids=guild_ids, ready=ready)
        self.presses = front

    async def setup_hook(self) -> None:
        await self.hooks.setup()

    async def on_ready(self) -> None:
        await self.hooks.on_ready()

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self.hooks.on_interaction(interaction)


class AnimateClient(_AnimateEvents):
    pass


class AnimateShardedClient(_AnimateEvents, discord.AutoShardedClient):
    pass


def http_connector() -> aiohttp.TCPConnector:
    """Room for a burst: every answer to an interaction is its own HTTP request, and with
    aiohttp's default of 100 connections the 101st ack of a burst waits for a free one."""
    return aiohttp.TCPConnector(limit=MAX_CONNECTIONS)


def make_client(
    front: DiscordFrontDoor,
    *,
    api_base: str,
    guild_ids: Sequence[int] = (),
    shards: int | None = None,
    ready: Callable[[str], None] = lambda line: None,
    **options: Any,
) -> AnimateClient | AnimateShardedClient:
    """The bot's client; `shards` (DISCORD_SHARDS) picks discord.py's `AutoShardedClient`
    with that many shards in this process (0: as many as Discord recommends). `options` go
    to discord.py's client (e.g. `http_trace`). Call it with the event loop running."""
    no_voice()
    options.setdefault("connector", http_connector())
    if shards is None:
        return AnimateClient(front, api_base=api_base, guild_ids=guild_ids, ready=ready, **options)
    return AnimateShardedClient(
        front, api_base=api_base, guild_ids=guild_ids, ready=ready, shard_count=shards or None,
        **options,
    )  # fmt: skip
