"""How the bot's chat values look on Discord: pure functions, no I/O.

Message links (`https://discord.com/channels/<server>/<channel>/<message>`) are what the
Discord sink records as a job's status message and delivered clip: a person can open them
from /jobs, and they carry the channel the message is in, which a later edit or delete needs.
"""

from __future__ import annotations

import re
from typing import Any

import discord
from discord import app_commands

from bot.chat.markup import Markup
from bot.chat.options import Choice, enabled_models, price_lines
from bot.chat.status import StatusView
from bot.discord_adapter.views import buttons_view
from bot.models import raw_id
from bot.service import AnimateService
from providers.catalog import describe_options
from storage import Job

MAX_CONTENT = 2000  # Discord's limit for a message's text
MAX_THREAD_NAME = 100
NO_PINGS = discord.AllowedMentions.none()
_MESSAGE_URL = re.compile(r"^https://discord\.com/channels/(\d+|@me)/(\d+)/(\d+)$")


def fit_text(text: str, limit: int = MAX_CONTENT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_message(view: StatusView) -> dict[str, Any]:
    """Keyword arguments for sending or editing a job's status message."""
    return {
        "content": fit_text(view.text()),
        "view": buttons_view(view.buttons),
        "allowed_mentions": NO_PINGS,
    }


def ping_only(user_id: str) -> discord.AllowedMentions:
    """Mentions that notify the requester and nobody else (no roles, no @everyone)."""
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(int(raw_id(user_id)))]
    )


def message_url(server_id: str | None, channel_id: int | str, message_id: int | str) -> str:
    guild = raw_id(server_id) if server_id else "@me"
    return f"https://discord.com/channels/{guild}/{channel_id}/{message_id}"


def parse_message_url(ref: str | None) -> tuple[int, int] | None:
    """(channel id, message id) of a message link the sink recorded, else None."""
    match = _MESSAGE_URL.match(ref or "")
    return (int(match[2]), int(match[3])) if match else None


def thread_name(job: Job) -> str:
    """The thread opened on a clip's reply: the first line of its prompt."""
    first = " ".join((job.prompt.splitlines() or [""])[0].split())
    return fit_text(f"🎬 {first}" if first else "🎬 animate", MAX_THREAD_NAME)


def app_choices(choices: list[Choice]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=c.name[:100], value=c.value[:100]) for c in choices]


def pages(lines: list[str], limit: int = MAX_CONTENT) -> list[str]:
    """Lines joined into as few messages as Discord's length limit allows."""
    out: list[str] = []
    current = ""
    for line in lines:
        line = fit_text(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return [*out, current] if current else out or ["(nothing)"]


def models_text(service: AnimateService, m: Markup) -> list[str]:
    """/models: each enabled model, its options and its prices."""
    lines: list[str] = []
    for spec in enabled_models(service):
        lines.append(f"{m.bold(spec.display_name)} ({m.code(spec.id)})")
        lines += [f"  {line}" for line in describe_options(spec)]
        lines += [f"  price {line}" for line in price_lines(service, spec)]
    if not lines:
        lines.append("No model is enabled: the operator has not set a provider key yet.")
    return pages(lines)
