"""Raw INTERACTION_CREATE payloads as Discord's gateway sends them (Discord docs,
"Interactions: Receiving and Responding"), for the real discord.py client to parse."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from tests.discord.fake_discord import ALL_PERMISSIONS, FakeDiscord

PING, COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 31)  # view/send/...
_counter = itertools.count(1)


def user(user_id: str, name: str = "member") -> dict[str, Any]:
    return {"id": user_id, "username": name, "discriminator": "0", "global_name": name,
            "avatar": None}  # fmt: skip


def member(user_id: str, *, roles: tuple[str, ...] = (), permissions: int = MEMBER_PERMISSIONS,
           ) -> dict[str, Any]:  # fmt: skip
    return {
        "user": user(user_id), "roles": list(roles), "joined_at": "2026-01-01T00:00:00+00:00",
        "deaf": False, "mute": False, "flags": 0, "permissions": str(permissions),
        "avatar": None, "nick": None, "pending": False,
    }  # fmt: skip


class Payloads:
    """Builds interactions in the fake's server and channel, and registers their tokens."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.app_permissions = ALL_PERMISSIONS
        self.attachment_size_limit = 10 * 1024 * 1024

    def base(
        self,
        type: int,
        data: dict[str, Any] | None,
        *,
        user_id: str = "111",
        roles: tuple[str, ...] = (),
        permissions: int = MEMBER_PERMISSIONS,
        channel: dict[str, Any] | None = None,
        message: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        fake = self.fake
        channel = channel or fake.channels[int(fake.channel_id)]
        iid = fake.snowflake(fake.now() if at is None else at)
        token = f"itoken-{next(_counter)}-{secrets.token_hex(4)}"
        fake.expect_interaction(iid, token, type, channel["id"])
        payload: dict[str, Any] = {
            "id": str(iid), "application_id": str(fake.app_id), "type": type, "token": token,
            "version": 1, "guild_id": str(fake.guild_id),
            "guild": {"id": str(fake.guild_id), "locale": "en-US", "features": []},
            "channel_id": channel["id"], "channel": {k: v for k, v in channel.items()
                                                     if k != "deleted"},
            "member": member(user_id, roles=roles, permissions=permissions),
            "app_permissions": str(self.app_permissions), "locale": "en-US",
            "guild_locale": "en-US", "entitlements": [], "context": 0,
            "authorizing_integration_owners": {"0": str(fake.guild_id)},
            "attachment_size_limit": self.attachment_size_limit,
        }  # fmt: skip
        if data is not None:
            payload["data"] = data
        if message is not None:
            payload["message"] = message
        return payload

    def attachment(self, data: bytes, *, name: str = "photo.png", kind: str = "image/png"
                   ) -> dict[str, Any]:  # fmt: skip
        url = self.fake.serve_file(data, name=name, kind=kind)
        aid = str(self.fake.snowflake())
        return {"id": aid, "filename": name, "size": len(data), "url": url, "proxy_url": url,
                "content_type": kind, "width": 320, "height": 240, "ephemeral": True}  # fmt: skip

    def animate(
        self, image: dict[str, Any] | None, prompt: str = "the lamp flickers", *,
        last_image: dict[str, Any] | None = None, **options: Any,
    ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
        """(name, options, resolved) of an /animate command."""
        opts: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {"attachments": {}}
        for name, att in (("image", image), ("last_image", last_image)):
            if att is not None:
                opts.append({"name": name, "type": ATTACHMENT, "value": att["id"]})
                resolved["attachments"][att["id"]] = att
        opts.append({"name": "prompt", "type": STRING, "value": prompt})
        for name, value in options.items():
            kind = INTEGER if isinstance(value, int) else STRING
            opts.append({"name": name, "type": kind, "value": value})
        return "animate", opts, resolved

    def command(
        self, name: str, options: list[dict[str, Any]] | None = None,
        resolved: dict[str, Any] | None = None, **kw: Any,
    ) -> dict[str, Any]:  # fmt: skip
        data: dict[str, Any] = {"id": str(self.fake.snowflake()), "name": name, "type": 1,
                                "options": options or [], "guild_id": str(self.fake.guild_id)}
        if resolved:
            data["resolved"] = resolved
        return self.base(COMMAND, data, **kw)

    def slash(self, name: str, **options: Any) -> dict[str, Any]:
        """A command with plain string/integer options."""
        opts = [
            {"name": k, "type": INTEGER if isinstance(v, int) else STRING, "value": v}
            for k, v in options.items()
        ]
        return self.command(name, opts)

    def admin(
        self, group: str | None, sub: str, options: list[dict[str, Any]] | None = None,
        resolved: dict[str, Any] | None = None, **kw: Any,
    ) -> dict[str, Any]:  # fmt: skip
        inner: dict[str, Any] = {"name": sub, "type": SUB_COMMAND, "options": options or []}
        if group is not None:
            inner = {"name": group, "type": SUB_COMMAND_GROUP, "options": [inner]}
        return self.command("animate-admin", [inner], resolved, **kw)

    def autocomplete(self, focused: str, typed: Any, **others: Any) -> dict[str, Any]:
        opts = [{"name": k, "type": INTEGER if isinstance(v, int) else STRING, "value": v}
                for k, v in others.items()]  # fmt: skip
        opts.append({"name": focused, "type": INTEGER if focused == "duration" else STRING,
                     "value": typed, "focused": True})  # fmt: skip
        data = {"id": str(self.fake.snowflake()), "name": "animate", "type": 1,
                "options": opts, "guild_id": str(self.fake.guild_id)}  # fmt: skip
        return self.base(AUTOCOMPLETE, data)

    def context_menu(self, message: dict[str, Any], **kw: Any) -> dict[str, Any]:
        data = {"id": str(self.fake.snowflake()), "name": "Animate this image", "type": 3,
                "target_id": message["id"], "guild_id": str(self.fake.guild_id),
                "resolved": {"messages": {message["id"]: message}}}  # fmt: skip
        return self.base(COMMAND, data, **kw)

    def form_submit(self, custom_id: str, values: dict[str, str], **kw: Any) -> dict[str, Any]:
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in values.items()]  # fmt: skip
        return self.base(MODAL_SUBMIT, {"custom_id": custom_id, "components": rows}, **kw)

    def button(self, custom_id: str, message: dict[str, Any], **kw: Any) -> dict[str, Any]:
        data = {"custom_id": custom_id, "component_type": 2}
        return self.base(COMPONENT, data, message=message, **kw)
