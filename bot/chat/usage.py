"""/usage, /jobs and Slack's App Home: what a person has spent, has held and has left under
each cap that applies to them, when each resets, and their recent jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.chat.actions import Actor
from bot.chat.markup import Markup
from bot.chat.texts import job_line
from bot.service import AnimateService
from providers.money import format_usd
from storage import CapUsage, Job, Scopes

_WHOSE = {"user": "You", "server": "This server", "global": "The bot"}
_CAP = {
    "daily": "today",
    "monthly": "this month",
    "concurrent_jobs": "rendering at once",
    "jobs_per_hour": "started in the last hour",
}
DAY_S = 86_400


@dataclass(frozen=True)
class UsageView:
    lines: list[str]
    daily_spend: list[tuple[str, int]] = field(default_factory=list)  # 30 days, oldest first

    def text(self) -> str:
        return "\n".join(self.lines)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cap_line(u: CapUsage, m: Markup) -> str:
    who = "This workspace" if u.scope_kind == "server" and m.platform == "slack" else (
        _WHOSE[u.scope_kind]
    )
    if u.unit == "jobs":
        if u.limit is None:
            return f"{who}: {u.used} {_CAP[u.cap]} (no limit)"
        line = f"{who}: {u.used} of {u.limit} {_CAP[u.cap]}"
        if u.cap == "jobs_per_hour" and u.used >= u.limit and u.resets_at is not None:
            line += f"; a slot frees at {_when(u.resets_at)}"
        return line
    spent, held = format_usd(u.spent), format_usd(u.held)
    if u.limit is None:
        return f"{who} {_CAP[u.cap]}: {spent} spent, {held} held (no limit)"
    left = format_usd(u.remaining or 0)
    reset = f"; resets {_when(u.resets_at)}" if u.resets_at is not None else ""
    return (
        f"{who} {_CAP[u.cap]}: {spent} spent, {held} held, {m.bold(left)} left of "
        f"{format_usd(u.limit)}{reset}"
    )


async def usage_view(
    service: AnimateService, actor: Actor, m: Markup, *, now: float, chart: bool = True
) -> UsageView:
    """Every cap that applies to the person here (their role caps included), and 30 days of
    their spend for the chart (`chart=False`: no chart is drawn, so no spend is read and
    `daily_spend` is empty)."""
    scopes = await service.scopes(actor.qualified, actor.server_id, actor.role_ids)
    ledger = service.ledger
    rows = await ledger.usage(scopes, now=now)
    shown = [u for u in rows if u.scope_kind != "global" or u.limit is not None]
    lines = [cap_line(u, m) for u in shown]
    if not chart:
        return UsageView(lines)
    start = (int(now) // DAY_S - 29) * DAY_S
    by_day = await ledger.spend_by_day(since=start, until=now + 1, scopes=Scopes(scopes.user_id))
    days = [
        datetime.fromtimestamp(start + i * DAY_S, UTC).strftime("%Y-%m-%d") for i in range(30)
    ]
    return UsageView(lines, [(d, by_day.get(d, 0)) for d in days])


async def recent_jobs(
    service: AnimateService, actor: Actor, m: Markup, *, limit: int = 10
) -> list[str]:
    """The person's recent jobs, newest first, each with its state, cost and clip link."""
    jobs: list[Job] = await service.jobs.list_jobs(user_id=actor.qualified, limit=limit)
    ledger = service.ledger
    lines = []
    for job in jobs:
        reservation = await ledger.get(job.ledger_key)
        lines.append(job_line(job, reservation, m, link=clip_link(job)))
    return lines or ["No clips yet: start one with /animate."]


def clip_link(job: Job) -> str | None:
    """Where a delivered clip can be seen: the message the bot posted it in, when the sink
    recorded a link there (`delivered_ref` starting with http)."""
    ref = job.delivered_ref or ""
    return ref if ref.startswith("http") else None
