"""How each chat platform writes bold, links and mentions, and how user text is escaped.

The sentences in `bot.chat` are written once with a `Markup`; each adapter passes its own.
User-supplied text (a prompt) is escaped so it cannot mention anyone or break the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.models import raw_id


@dataclass(frozen=True)
class Markup:
    platform: str

    def bold(self, text: str) -> str:
        return f"**{text}**" if self.platform == "discord" else f"*{text}*"

    def code(self, text: str) -> str:
        return f"`{text.replace('`', 'ʼ')}`"

    def link(self, text: str, url: str) -> str:
        if self.platform == "discord":
            return f"[{text}](<{url}>)"
        return f"<{url}|{text}>"

    def mention(self, user_id: str) -> str:
        """`user_id` as stored on a job (`discord:123`) or raw (`123`)."""
        return f"<@{raw_id(user_id)}>"

    def quote(self, text: str) -> str:
        return "\n".join(f"> {line}" for line in self.escape(text).splitlines() or [""])

    def escape(self, text: str) -> str:
        """Neutralise what would mention people or format the message."""
        if self.platform == "slack":
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = re.sub(r"([\\*_~`|>])", r"\\\1", text)
        # @everyone / @here / <@id> must stay text (allowed_mentions also guards this)
        return text.replace("@", "@\u200b")


DISCORD = Markup("discord")
SLACK = Markup("slack")
