"""/animate-admin: its words turned into `bot.chat.admin.AdminOps` calls.

Slack sends the command's text as typed, with mentions and links escaped
(`<@U123|ana>`, `<https://host/x.safetensors>`: the manifest turns escaping on), so a
member is named by id and a link arrives whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.chat.actions import Actor
from bot.chat.admin import AdminOps, Report, parse_caps
from bot.errors import RequestRefused
from bot.slack_adapter.blocks import ADMIN_HELP
from providers.money import format_usd

MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
CAP_KEYS = {
    "daily": "daily",
    "monthly": "monthly",
    "concurrent": "concurrent",
    "at_once": "concurrent",
    "per_hour": "per_hour",
    "per-hour": "per_hour",
    "hourly": "per_hour",
}
WORKSPACE_WORDS = ("workspace", "server", "team")
DEFAULT_REPORT_DAYS = 30


@dataclass(frozen=True)
class AdminReply:
    """What to tell the admin (privately), and a file to send them."""

    text: str
    file: Report | None = None


async def run_admin(ops: AdminOps, actor: Actor, text: str, *, now: float) -> AdminReply:
    """One /animate-admin command; raises RequestRefused with a sentence for the admin."""
    words = text.split()
    verb = words[0].lower() if words else "help"
    args = words[1:]
    if verb == "help":
        return AdminReply(ADMIN_HELP)
    if verb == "caps":
        return AdminReply(await _caps(ops, actor, args))
    if verb in ("lora", "loras"):
        return AdminReply(await _lora(ops, actor, args))
    if verb == "report":
        days = _days(args)
        report = await ops.report(actor, days=days, now=now)
        return AdminReply(
            f"The workspace's spend over the last {days} days: {report.rows} rows, "
            f"{format_usd(report.total_micros)} in all.",
            file=report,
        )
    if verb in ("pause", "resume"):
        return AdminReply(await ops.set_paused(actor, verb == "pause"))
    raise RequestRefused(f"`{verb}` is not an /animate-admin command.\n{ADMIN_HELP}")


async def _caps(ops: AdminOps, actor: Actor, args: list[str]) -> str:
    if not args:
        return "\n".join(await ops.show_caps(actor))
    who, settings = args[0], args[1:]
    values: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        name = CAP_KEYS.get(key.strip().lower())
        if not sep or name is None or not value.strip():
            raise RequestRefused(
                f"`{item}` is not a cap setting: write daily=5, monthly=50, concurrent=2 or "
                "per_hour=10 (`none` for no cap, `default` to drop one)."
            )
        values[name] = value.strip()
    caps = parse_caps(**values)
    if who.lower() in WORKSPACE_WORDS:
        return await ops.set_caps(actor, "server", None, caps)
    member = MENTION.match(who)
    if member is None:
        raise RequestRefused(
            f"`{who}` names no member: write `workspace`, or mention the member with @ "
            "(e.g. `caps @ana daily=2`)."
        )
    return await ops.set_caps(actor, "member", member.group(1), caps)


async def _lora(ops: AdminOps, actor: Actor, args: list[str]) -> str:
    verb = args[0].lower() if args else "list"
    if verb == "list":
        saved = await ops.list_loras(actor)
        if not saved:
            return "No saved LoRAs yet: `lora save NAME URL [STRENGTH]` adds one."
        return "\n".join(f"• `{s.name}` {s.scale:g} — {s.url}" for s in saved)
    if verb == "save" and len(args) in (3, 4):
        scale = 1.0
        if len(args) == 4:
            try:
                scale = float(args[3])
            except ValueError:
                raise RequestRefused(f"Strength {args[3]!r} is not a number: use 0 to 4.") from None
        lora = await ops.save_lora(actor, args[1], _unlink(args[2]), scale)
        return f"Saved LoRA `{lora.name}` ({lora.scale:g}): use it by name in the LoRAs field."
    if verb == "delete" and len(args) == 2:
        return await ops.delete_lora(actor, args[1])
    raise RequestRefused(
        "Write `lora list`, `lora save NAME URL [STRENGTH]` or `lora delete NAME`."
    )


def _days(args: list[str]) -> int:
    if not args:
        return DEFAULT_REPORT_DAYS
    text = args[0].lower().removesuffix("d").removesuffix("days")
    if not text.isdigit():
        raise RequestRefused(f"`{args[0]}` is not a number of days: e.g. `report 30`.")
    return int(text)


def _unlink(text: str) -> str:
    """`<https://x|label>` or `<https://x>` (Slack's escaped link) -> https://x."""
    if text.startswith("<") and text.endswith(">"):
        return text[1:-1].split("|", 1)[0]
    return text
