"""/animate-admin: the moderators' commands. Discord shows them to members with Manage
Server by default (`default_permissions`, which a server can change in its Integrations
settings); every operation re-checks the permission in `bot.chat.admin`.

  /animate-admin caps show | server | role ROLE | member MEMBER   (daily, monthly, concurrent,
                                                                   per_hour: "5", "$2.50",
                                                                   "none" or "default")
  /animate-admin lora save NAME URL [strength] | delete NAME | list
  /animate-admin report [days]       the server's spend by day, member and model, as CSV
  /animate-admin pause | resume      stop or restart /animate on the server
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.chat.actions import Actor
from bot.chat.admin import REPORT_MAX_DAYS, Target, parse_caps
from bot.discord_adapter import events
from bot.discord_adapter.front import DiscordFrontDoor
from bot.discord_adapter.render import fit_text
from bot.errors import BotError
from providers.money import format_usd

Strength = app_commands.Range[float, 0.0, 4.0]
Days = app_commands.Range[int, 1, REPORT_MAX_DAYS]
CAP_HELP = {
    "daily": "Dollars a day, e.g. 5 or 2.50; none = no cap; default = drop this override",
    "monthly": "Dollars a month; none or default as for daily",
    "concurrent": "Clips rendering at once (a whole number); none or default",
    "per_hour": "Clips started per hour (a whole number); none or default",
}


def admin_group(front: DiscordFrontDoor) -> app_commands.Group:
    group = app_commands.Group(
        name="animate-admin",
        description="Caps, saved LoRAs, the spend report, pause and resume (moderators)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )
    caps = app_commands.Group(name="caps", description="Spending caps", parent=group)
    lora = app_commands.Group(name="lora", description="The server's saved LoRAs", parent=group)
    ops = front.admin

    async def answer(
        interaction: discord.Interaction[Any], op: Callable[[Actor], Awaitable[str]]
    ) -> None:
        async with front.working():
            await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                text = await op(events.actor_for(interaction))
            except BotError as exc:
                text = exc.user_message
            await interaction.followup.send(fit_text(text), ephemeral=True)

    async def set_caps(
        interaction: discord.Interaction[Any],
        target: Target,
        target_id: str | None,
        name: str | None,
        **typed: str | None,
    ) -> None:
        async def op(actor: Actor) -> str:
            return await ops.set_caps(actor, target, target_id, parse_caps(**typed), name=name)

        await answer(interaction, op)

    @caps.command(name="show", description="The caps of the server, its members and roles")
    async def caps_show(interaction: discord.Interaction[Any]) -> None:
        async def op(actor: Actor) -> str:
            return "\n".join(await ops.show_caps(actor, role_name=_role_mention))

        await answer(interaction, op)

    @caps.command(name="server", description="Caps for the whole server")
    @app_commands.describe(**CAP_HELP)
    async def caps_server(
        interaction: discord.Interaction[Any],
        daily: str | None = None,
        monthly: str | None = None,
        concurrent: str | None = None,
        per_hour: str | None = None,
    ) -> None:
        await set_caps(
            interaction, "server", None, None,
            daily=daily, monthly=monthly, concurrent=concurrent, per_hour=per_hour,
        )  # fmt: skip

    @caps.command(
        name="role",
        description="Caps for members with a role (the most generous of a member's roles wins)",
    )
    @app_commands.describe(role="The role (@everyone: every member's default)", **CAP_HELP)
    async def caps_role(
        interaction: discord.Interaction[Any],
        role: discord.Role,
        daily: str | None = None,
        monthly: str | None = None,
        concurrent: str | None = None,
        per_hour: str | None = None,
    ) -> None:
        await set_caps(
            interaction, "role", str(role.id), _role_mention(str(role.id)),
            daily=daily, monthly=monthly, concurrent=concurrent, per_hour=per_hour,
        )  # fmt: skip

    @caps.command(name="member", description="A member's own caps (they win over role caps)")
    @app_commands.describe(member="The member", **CAP_HELP)
    async def caps_member(
        interaction: discord.Interaction[Any],
        member: discord.User,
        daily: str | None = None,
        monthly: str | None = None,
        concurrent: str | None = None,
        per_hour: str | None = None,
    ) -> None:
        await set_caps(
            interaction, "member", str(member.id), f"<@{member.id}>",
            daily=daily, monthly=monthly, concurrent=concurrent, per_hour=per_hour,
        )  # fmt: skip

    @lora.command(name="save", description="Save a LoRA URL under a short name for `loras`")
    @app_commands.describe(
        name="Short name (letters, digits, - _ .)",
        url="https(s) link to the LoRA weights",
        strength="Strength used when none is typed (0 to 4)",
    )
    async def lora_save(
        interaction: discord.Interaction[Any], name: str, url: str, strength: Strength = 1.0
    ) -> None:
        async def op(actor: Actor) -> str:
            saved = await ops.save_lora(actor, name, url, strength)
            return f"Saved LoRA {saved.name!r} (strength {saved.scale:g}): {saved.url}"

        await answer(interaction, op)

    async def saved_names(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        actor = events.actor_for(interaction)
        loras = await ops.list_loras(actor)
        typed = current.lower()
        return [
            app_commands.Choice(name=lo.name, value=lo.name)
            for lo in loras
            if lo.name.startswith(typed)
        ][:25]

    @lora.command(name="delete", description="Delete a saved LoRA")
    @app_commands.autocomplete(name=saved_names)
    async def lora_delete(interaction: discord.Interaction[Any], name: str) -> None:
        async def op(actor: Actor) -> str:
            return await ops.delete_lora(actor, name)

        await answer(interaction, op)

    @lora.command(name="list", description="The server's saved LoRAs")
    async def lora_list(interaction: discord.Interaction[Any]) -> None:
        async def op(actor: Actor) -> str:
            loras = await ops.list_loras(actor)
            lines = [f"`{lo.name}` (strength {lo.scale:g}): <{lo.url}>" for lo in loras]
            return "\n".join(lines) or "No saved LoRAs yet: add one with /animate-admin lora save."

        await answer(interaction, op)

    @group.command(name="report", description="The server's spend by day, member and model (CSV)")
    @app_commands.describe(days="How many days back (default 30)")
    async def report(interaction: discord.Interaction[Any], days: Days = 30) -> None:
        async with front.working():
            await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                made = await ops.report(events.actor_for(interaction), days=days, now=front.clock())
            except BotError as exc:
                await interaction.followup.send(exc.user_message, ephemeral=True)
                return
            await interaction.followup.send(
                f"Spend over the last {days} days: {format_usd(made.total_micros)} in "
                f"{made.rows} rows (day, member, model).",
                file=discord.File(io.BytesIO(made.data), filename=made.filename),
                ephemeral=True,
            )

    @group.command(name="pause", description="Pause /animate on this server")
    async def pause(interaction: discord.Interaction[Any]) -> None:
        async def op(actor: Actor) -> str:
            return await ops.set_paused(actor, True)

        await answer(interaction, op)

    @group.command(name="resume", description="Let /animate run again on this server")
    async def resume(interaction: discord.Interaction[Any]) -> None:
        async def op(actor: Actor) -> str:
            return await ops.set_paused(actor, False)

        await answer(interaction, op)

    return group


def _role_mention(role_id: str) -> str:
    return f"<@&{role_id}>"
