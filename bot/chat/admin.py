"""/animate-admin: what a server's moderators may change, the same on Discord and Slack.

Every operation re-checks `actor.admin` (Discord: Manage Server; Slack: workspace admin or
owner): a platform's default command permissions are a UI hint, not authorization.

Caps are written as people think of them: money in dollars (`5`, `$2.50`), counts as whole
numbers, `none` for no cap, `default` to drop an override. Members' caps: their own when
set, else the most generous of their roles' caps, else the server's defaults for members.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from bot.chat.actions import Actor
from bot.errors import NotAllowed, RequestRefused
from bot.models import qualify, raw_id
from bot.service import AnimateService
from providers.money import format_usd, usd_string, usd_to_micros
from providers.params import LORA_SCALE_MAX, LORA_SCALE_MIN, is_http_url
from storage import Limits, SavedLora
from storage.models import LIMIT_FIELDS

CapValue = int | None | Literal["default"]
MAX_CAP_USD = Decimal(1_000_000)  # a cap above a million dollars is a typo
MAX_COUNT = 100_000
LORA_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
REPORT_MAX_DAYS = 366
_LABELS = {
    "daily_micros": "daily",
    "monthly_micros": "monthly",
    "concurrent_jobs": "at once",
    "jobs_per_hour": "per hour",
}
Target = Literal["server", "role", "member"]


def place(actor: Actor) -> str:
    """What the platform calls the community: a Discord server, a Slack workspace."""
    return "workspace" if actor.platform == "slack" else "server"


def _require_admin(actor: Actor) -> None:
    if not actor.admin:
        raise NotAllowed(
            f"Only the {place(actor)}'s administrators can change the bot's settings here."
        )
    if actor.server_id is None:
        raise RequestRefused(f"Run this in a {place(actor)} channel, not in a direct message.")


def parse_money_cap(text: str, *, what: str) -> CapValue:
    """'5', '$2.50', 'none', 'default' -> micro-dollars, None (no cap) or 'default'."""
    word = text.strip().lower()
    if word in ("none", "no", "unlimited", "off"):
        return None
    if word == "default":
        return "default"
    try:
        usd = Decimal(word.removeprefix("$").replace(",", ""))
    except InvalidOperation:
        raise RequestRefused(
            f"The {what} cap {text!r} is not an amount: write dollars like 5 or 2.50, "
            "`none` for no cap, or `default`."
        ) from None
    if not usd.is_finite() or usd < 0 or usd > MAX_CAP_USD:
        raise RequestRefused(
            f"The {what} cap must be between $0 and ${MAX_CAP_USD:,}, not {text}."
        )
    try:
        return usd_to_micros(usd)  # in range, so only sub-micro precision is refused
    except ValueError:
        raise RequestRefused(
            f"The {what} cap {text} is finer than a millionth of a dollar."
        ) from None


def parse_count_cap(text: str, *, what: str) -> CapValue:
    word = text.strip().lower()
    if word in ("none", "no", "unlimited", "off"):
        return None
    if word == "default":
        return "default"
    if not word.isdigit() or int(word) > MAX_COUNT:
        raise RequestRefused(
            f"The {what} cap {text!r} must be a whole number from 0 to {MAX_COUNT:,}, "
            "`none` for no cap, or `default`."
        )
    return int(word)


def parse_caps(
    *,
    daily: str | None = None,
    monthly: str | None = None,
    concurrent: str | None = None,
    per_hour: str | None = None,
) -> dict[str, CapValue]:
    """The caps a moderator typed (only those given), checked; raises RequestRefused."""
    out: dict[str, CapValue] = {}
    if daily is not None:
        out["daily_micros"] = parse_money_cap(daily, what="daily")
    if monthly is not None:
        out["monthly_micros"] = parse_money_cap(monthly, what="monthly")
    if concurrent is not None:
        out["concurrent_jobs"] = parse_count_cap(concurrent, what="at-once")
    if per_hour is not None:
        out["jobs_per_hour"] = parse_count_cap(per_hour, what="per-hour")
    if not out:
        raise RequestRefused("Give at least one cap: daily, monthly, concurrent or per_hour.")
    return out


def describe_limits(limits: Limits | Mapping[str, CapValue]) -> str:
    values: Mapping[str, CapValue]
    if isinstance(limits, Mapping):
        values = limits
    else:
        values = {f: getattr(limits, f) for f in LIMIT_FIELDS}
    parts = []
    for name in LIMIT_FIELDS:
        if name not in values:
            continue
        value = values[name]
        if value is None or value == "default":
            shown = "no cap"
        elif name.endswith("_micros"):
            shown = format_usd(int(value))
        else:
            shown = str(value)
        parts.append(f"{_LABELS[name]} {shown}")
    return ", ".join(parts) if parts else "no caps of its own"


@dataclass(frozen=True)
class Report:
    filename: str
    data: bytes
    rows: int
    total_micros: int


class AdminOps:
    def __init__(self, service: AnimateService) -> None:
        self.service = service
        self.ledger = service.ledger
        self.servers = service.servers

    async def show_caps(
        self, actor: Actor, *, role_name: Callable[[str], str] = str
    ) -> list[str]:
        """The server's caps, the members' defaults and each role's caps. `role_name`: how
        the platform names a role id (Discord: a role mention)."""
        _require_admin(actor)
        assert actor.server_id is not None
        server = await self.ledger.get_limits("server", actor.server_id)
        lines = [
            f"{place(actor).capitalize()}: {describe_limits(server)}.",
            f"Members by default: {describe_limits(self.service.user_limits)}.",
        ]
        for role_id, caps in sorted((await self.servers.role_limits(actor.server_id)).items()):
            lines.append(f"Role {role_name(role_id)}: {describe_limits(caps)}.")
        return lines

    async def set_caps(
        self,
        actor: Actor,
        target: Target,
        target_id: str | None,
        caps: dict[str, CapValue],
        *,
        name: str | None = None,
    ) -> str:
        """Set the server's, a role's or a member's caps; says what they are now. `name`:
        how to call the role or member in the answer (default: its id)."""
        _require_admin(actor)
        assert actor.server_id is not None
        if target == "server":
            now = await self.ledger.set_limits("server", actor.server_id, **caps)
            return f"{place(actor).capitalize()} caps are now: {describe_limits(now)}."
        if not target_id:
            raise RequestRefused(f"Name the {target} whose caps to set.")
        if target == "role":
            role = await self.servers.set_role_limits(actor.server_id, target_id, **caps)
            return f"Role {name or target_id} now sets: {describe_limits(role)}."
        member = qualify(actor.platform, target_id)
        await self.ledger.set_limits("user", member, **caps)
        shown = {k: v for k, v in caps.items() if v != "default"}
        dropped = [_LABELS[k] for k, v in caps.items() if v == "default"]
        said = f"Member {name or raw_id(member)} now has their own caps: "
        said += describe_limits(shown) if shown else "none"
        if dropped:
            said += f" (dropped: {', '.join(dropped)})"
        return said + ". Caps not set here come from their roles, else the members' defaults."

    async def save_lora(self, actor: Actor, name: str, url: str, scale: float) -> SavedLora:
        _require_admin(actor)
        assert actor.server_id is not None
        key = name.strip().lower()
        if not LORA_NAME.match(key):
            raise RequestRefused(
                f"LoRA name {name!r} is not usable: 1 to 32 letters, digits, '-', '_' or '.'."
            )
        if not is_http_url(url.strip()):
            raise RequestRefused(f"{url!r} is not an http(s) link to LoRA weights.")
        if not LORA_SCALE_MIN <= scale <= LORA_SCALE_MAX:
            raise RequestRefused(f"Strength {scale:g} is out of range: use 0 to 4.")
        return await self.servers.save_lora(
            actor.server_id, key, url.strip(), scale, by=actor.qualified
        )

    async def delete_lora(self, actor: Actor, name: str) -> str:
        _require_admin(actor)
        assert actor.server_id is not None
        if not await self.servers.delete_lora(actor.server_id, name):
            raise RequestRefused(f"There is no saved LoRA called {name!r}.")
        return f"Deleted the saved LoRA {name.strip().lower()!r}."

    async def list_loras(self, actor: Actor) -> list[SavedLora]:
        """Anyone may see the list (it is what `loras` autocompletes); no admin check."""
        if actor.server_id is None:
            return []
        return await self.servers.loras(actor.server_id)

    async def set_paused(self, actor: Actor, paused: bool) -> str:
        _require_admin(actor)
        assert actor.server_id is not None
        await self.servers.set_paused(actor.server_id, paused, by=actor.qualified)
        if paused:
            return f"/animate is paused on this {place(actor)}. Clips already running will finish."
        return f"/animate is running again on this {place(actor)}."

    async def report(self, actor: Actor, *, days: int, now: float) -> Report:
        """The server's settled spend per day, member and model as CSV (sum it by any of
        the three in a spreadsheet)."""
        _require_admin(actor)
        assert actor.server_id is not None
        if not 1 <= days <= REPORT_MAX_DAYS:
            raise RequestRefused(f"The report covers 1 to {REPORT_MAX_DAYS} days, not {days}.")
        since = now - days * 86_400
        rows = await self.servers.spend_rows(actor.server_id, since=since, until=now + 1)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["day", "member", "model", "clips", "spent_micros", "spent_usd"])
        total = 0
        for day, user, model, clips, micros in rows:
            total += micros
            writer.writerow(
                [
                    datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%d"),
                    user, model, clips, micros, usd_string(micros),
                ]
            )  # fmt: skip
        server = raw_id(actor.server_id)
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
        return Report(
            filename=f"animate-spend-{server}-{stamp}-{days}d.csv",
            data=out.getvalue().encode("utf-8"),
            rows=len(rows),
            total_micros=total,
        )
