"""One status view per job, rendered from the job alone, so that any process can redraw it.

The view is platform-neutral: a headline, detail lines and buttons. The Discord adapter
renders it as a message with components, the Slack adapter as Block Kit; both edit ONE
status message per job as it moves (queued -> rendering with elapsed time and percent ->
delivered or failed, with the reason and whether it cost anything).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.chat.actions import Action, Button, buttons_for
from bot.chat.markup import Markup
from bot.chat.texts import model_name
from bot.keys import PROVIDER_NAMES
from bot.sinks import Progress
from providers.money import format_usd
from storage import ACTIVE, Job, JobStatus, Reservation

STATE_WORDS = {
    "reserved": "queued",
    "submitted": "submitted",
    "processing": "rendering",
    "completed": "finishing",
    "delivered": "delivered",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "needs an operator",
}


@dataclass(frozen=True)
class StatusView:
    headline: str
    details: list[str] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([self.headline, *self.details])


def cost_words(job: Job, reservation: Reservation | None) -> str:
    """What the job has cost so far, as the ledger has it (`reservation`: the job's hold)."""
    if reservation is None:
        return "not charged"
    if reservation.status == "held":
        money = format_usd(reservation.amount_micros)
        if job.status in ACTIVE:
            return f"{money} held"
        return f"{money} held until an operator checks it with the provider"
    if reservation.status == "settled":
        return f"{format_usd(reservation.settled_micros)} charged"
    return "not charged"


def shows_ledger_cost(job: Job, *, delivered: bool = False) -> bool:
    """Whether `render_status` reads the hold (a job that ended without its clip: what it
    cost); a working or delivered job shows its price, so its redraws need no ledger read."""
    return not delivered and job.status not in ACTIVE and job.status is not JobStatus.DELIVERED


def render_status(
    job: Job,
    m: Markup,
    *,
    reservation: Reservation | None,
    progress: Progress | None = None,
    delivered: bool = False,
    note: str | None = None,
) -> StatusView:
    """The status of `job` as a person should see it now. `reservation`: the job's hold as the
    ledger has it (what it cost). `progress` carries the elapsed time
    and percent of the poll that prompted the redraw; `delivered` marks the clip as posted
    (the runner records it just after); `note` replaces the reason (a failure's sentence)."""
    title = m.bold(model_name(job.model))
    provider = PROVIDER_NAMES.get(job.provider, job.provider)
    details: list[str] = []
    if delivered or job.status is JobStatus.DELIVERED:
        headline = f"✅ {title} delivered · {format_usd(job.cost_micros)} charged"
        if note:
            details.append(note)
    elif job.status in ACTIVE:
        if job.cancel_requested:
            headline = f"🛑 {title}: cancel requested"
            details.append(
                "The provider has already started, so it will still charge "
                f"{format_usd(job.cost_micros)}; the clip will be discarded."
                if job.provider_task_id
                else "It will be cancelled before it reaches the provider; not charged."
            )
        elif job.status is JobStatus.RESERVED:
            headline = f"⏳ {title} queued · {format_usd(job.cost_micros)} held"
        elif job.status is JobStatus.SUBMITTED and (
            progress is None or progress.stage != "processing"
        ):
            headline = f"⏳ {title} sent to {provider} · {format_usd(job.cost_micros)} held"
        elif job.status is JobStatus.COMPLETED:
            headline = f"📦 {title} finished · posting the clip"
        else:
            headline = f"🎬 {title} rendering" + _elapsed(progress, job)
        if progress is not None and progress.stage == "slow":
            details.append(
                f"Taking longer than usual ({_minutes(progress.elapsed_s)}); still following it."
            )
    elif job.status is JobStatus.CANCELLED:
        headline = f"🚫 {title} cancelled · {cost_words(job, reservation)}"
        details.append(note or job.status_reason)
    else:
        headline = f"❌ {title} {STATE_WORDS[job.status.value]} · {cost_words(job, reservation)}"
        details.append(note or job.status_reason)
    view_job = job if not delivered else _as_delivered(job)
    return StatusView(
        headline=headline,
        details=[d for d in details if d],
        buttons=buttons_for(view_job, on="status"),
    )


def _as_delivered(job: Job) -> Job:
    from dataclasses import replace

    return replace(job, status=JobStatus.DELIVERED)


def _elapsed(progress: Progress | None, job: Job) -> str:
    if progress is None or progress.stage not in ("processing", "slow"):
        return f" · {job.progress_percent}%" if job.progress_percent is not None else ""
    pct = progress.percent if progress.percent is not None else job.progress_percent
    return f" · {_seconds(progress.elapsed_s)}" + (f" · {pct}%" if pct is not None else "")


def _seconds(s: float) -> str:
    s = max(0, int(s))
    return f"{s} s" if s < 90 else f"{s // 60} min {s % 60:02d} s"


def _minutes(s: float) -> str:
    return f"{max(1, round(s / 60))} min"


__all__ = ["Action", "StatusView", "cost_words", "render_status"]
