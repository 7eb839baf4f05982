"""Discord interactions -> the platform-neutral values of `bot.chat` and the service.

Who someone is (`Actor`), what they asked (`AnimateRequest`), where the bot may work
(`missing_permissions`) and which image a message carries - read from the interaction
payload alone, before anything is awaited.
"""

from __future__ import annotations

from typing import Any

import discord

from bot.chat.actions import Actor
from bot.models import AnimateRequest, ImageSource

_CT = discord.ChannelType
THREADS = (_CT.public_thread, _CT.private_thread, _CT.news_thread)
# Channels where a message can carry a thread (not forums, voice chats or stages).
THREADABLE = (_CT.text, _CT.news)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
PERMISSION_NAMES = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "attach_files": "Attach Files",
    "read_message_history": "Read Message History",
}


def channel_type(interaction: discord.Interaction[Any]) -> discord.ChannelType | None:
    channel = interaction.channel
    return getattr(channel, "type", None) if channel is not None else None


def in_thread(interaction: discord.Interaction[Any]) -> bool:
    return channel_type(interaction) in THREADS


def can_open_thread(interaction: discord.Interaction[Any]) -> bool:
    return channel_type(interaction) in THREADABLE


def missing_permissions(interaction: discord.Interaction[Any]) -> list[str]:
    """The permissions the bot lacks in this channel for a clip (the interaction payload's
    `app_permissions`): to post, to open or use the thread, to attach the clip, and to read
    back what it posted (exactly-once delivery after a restart)."""
    needed = ["view_channel", "attach_files", "read_message_history"]
    if in_thread(interaction):
        needed.append("send_messages_in_threads")
    else:
        needed.append("send_messages")
        if can_open_thread(interaction):
            needed += ["create_public_threads", "send_messages_in_threads"]
    perms = interaction.app_permissions
    return [PERMISSION_NAMES[name] for name in needed if not getattr(perms, name)]


def role_ids(interaction: discord.Interaction[Any]) -> tuple[str, ...]:
    """The member's roles as the payload lists them, and @everyone (its id is the server's),
    so that caps set for @everyone are every member's default."""
    if interaction.guild_id is None:
        return ()
    # `Member.roles` drops roles missing from the guild cache; `_roles` is the payload's list.
    listed = getattr(interaction.user, "_roles", ())
    return (str(interaction.guild_id), *(str(r) for r in listed))


def actor_for(interaction: discord.Interaction[Any]) -> Actor:
    perms = interaction.permissions
    return Actor(
        platform="discord",
        user_id=str(interaction.user.id),
        server_id=f"discord:{interaction.guild_id}" if interaction.guild_id else None,
        moderator=perms.manage_messages or perms.manage_guild or perms.administrator,
        admin=perms.manage_guild or perms.administrator,
        role_ids=role_ids(interaction),
    )


def upload_limit(interaction: discord.Interaction[Any]) -> int:
    """What the bot can post here: the interaction's `attachment_size_limit` counts the
    person's Nitro, which the bot does not have, so the server's boost-tier limit caps it."""
    limit = interaction.filesize_limit
    guild = interaction.guild
    if guild is not None:
        limit = min(limit, guild.filesize_limit)
    return int(limit)


def where(interaction: discord.Interaction[Any]) -> tuple[str | None, str | None]:
    """(channel id, thread id) of the interaction: a thread's own channel is its parent."""
    channel = interaction.channel
    if channel is None:
        return None, None
    if in_thread(interaction):
        parent = getattr(channel, "parent_id", None)
        return (str(parent) if parent else str(channel.id)), str(channel.id)
    return str(channel.id), None


def animate_request(
    interaction: discord.Interaction[Any],
    *,
    image_url: str,
    prompt: str,
    model: str,
    options: dict[str, Any],
) -> AnimateRequest:
    channel_id, thread_id = where(interaction)
    return AnimateRequest(
        platform="discord",
        event_id=str(interaction.id),
        user_id=str(interaction.user.id),
        server_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=channel_id,
        thread_id=thread_id,
        image=ImageSource(url=image_url),
        prompt=prompt,
        model=model,
        options={k: v for k, v in options.items() if v not in (None, "")},
        sink={"kind": "discord", "upload_limit": upload_limit(interaction)},
        role_ids=role_ids(interaction),
    )


def message_image(message: discord.Message) -> str | None:
    """The first image a message carries: an attached image, else an embedded one."""
    for att in message.attachments:
        kind = (att.content_type or "").lower()
        if kind.startswith("image/") or att.filename.lower().endswith(IMAGE_SUFFIXES):
            return att.url
    for embed in message.embeds:
        if embed.image and embed.image.url:
            return embed.image.url
        if embed.type == "image" and embed.thumbnail and embed.thumbnail.url:
            return embed.thumbnail.url
    return None


def form_values(data: Any) -> dict[str, str]:
    """A modal submit's text inputs by custom id (action rows or labels, as Discord sends)."""
    out: dict[str, str] = {}

    def walk(components: Any) -> None:
        for comp in components or []:
            if "custom_id" in comp and ("value" in comp or "values" in comp):
                value = comp.get("value")
                if value is None:
                    values = comp.get("values") or []
                    value = values[0] if values else ""
                out[str(comp["custom_id"])] = str(value)
            walk(comp.get("components"))
            if isinstance(comp.get("component"), dict):
                walk([comp["component"]])

    walk((data or {}).get("components"))
    return out
