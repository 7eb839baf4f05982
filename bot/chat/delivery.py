"""The chat sink: how the runner shows a job's progress and posts its clip, on any platform.

Rules (the same for Discord and Slack; an adapter implements only `ChatPoster`):
- **One status message per job**, posted on first news (in the job's thread, else its
  channel) and edited from then on; its id is kept in the job's `message_id`, so any process
  edits the same message after a restart. A status message deleted meanwhile is posted again.
- **Exactly once**: before posting a clip the poster looks for one it already posted for this
  job (a restart between posting and recording it); the runner records the posted message.
- **NSFW**: a clip the provider flags is not posted where the channel does not allow it; the
  requester is told privately (with a private link when one can be made). It was still made
  and charged: the status says so.
- **Size**: a clip over the upload limit is re-encoded to fit when that keeps it watchable;
  otherwise, or when the platform refuses the upload anyway (413 / file too large), a link is
  posted with a note why: the bot's own signed link when the web endpoint is configured,
  else the provider's (WaveSpeed keeps outputs 7 days, Novita about an hour).
- A clip whose job was deleted (the Delete button) is not posted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.chat.actions import Button, buttons_for
from bot.chat.fit import fit_clip
from bot.chat.markup import Markup
from bot.chat.status import StatusView, render_status, shows_ledger_cost
from bot.chat.texts import model_name, option_words
from bot.sinks import Clip, Progress
from providers.money import format_usd
from storage import Job, JobStatus, JobStore, Ledger

log = logging.getLogger(__name__)

# A signed, lasting link to a clip (the web endpoint's /c/<token>), or None when the bot has
# no public endpoint.
LinkMaker = Callable[[Job, Clip], Awaitable[str | None]]
Fitter = Callable[[bytes, int], bytes | None]


class UploadRefused(Exception):
    """The platform would not take the file (too large here, uploads disabled); `reason` is
    a sentence for the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatPoster(Protocol):
    """What a chat adapter provides for delivery. Everything goes through the bot token
    (never an interaction token, which dies after 15 minutes)."""

    markup: Markup

    def upload_limit(self, job: Job) -> int:
        """The largest file this job's channel takes, in bytes."""

    async def allows_nsfw(self, job: Job) -> bool:
        """Whether the job's channel may show a clip the provider flagged NSFW."""

    async def show_status(self, job: Job, view: StatusView) -> str:
        """Edit the job's status message (`job.message_id`), or post it when there is none
        or it was deleted (in the job's thread, else its channel; a deleted thread means the
        channel); return the status message's id."""

    async def find_posted(self, job: Job) -> str | None:
        """The clip message already posted for this job (after a restart), or None."""

    async def post_clip(self, job: Job, clip: Clip, text: str, buttons: list[Button]) -> str:
        """Post the clip as a file with `text`; raise UploadRefused when the platform won't
        take it. Returns the posted message's reference."""

    async def post_text(self, job: Job, text: str, buttons: list[Button]) -> str:
        """Post `text` where the clip would go; returns the message's reference."""

    async def tell_privately(self, job: Job, text: str) -> None:
        """A private note to the person who started the job."""


class ChatSink:
    """A `bot.sinks.Sink` for one chat platform."""

    def __init__(
        self,
        poster: ChatPoster,
        *,
        jobs: JobStore,
        ledger: Ledger,
        links: LinkMaker | None = None,
        fitter: Fitter = fit_clip,
    ) -> None:
        self.poster = poster
        self.jobs = jobs
        self.ledger = ledger
        self.links = links
        self.fitter = fitter
        self.m = poster.markup

    async def progress(self, job: Job, update: Progress) -> None:
        if update.stage == "queued":
            return  # the front door's own reply shows the price held
        await self.redraw(job, progress=update)

    async def failed(self, job: Job, message: str) -> None:
        await self.redraw(job, note=message)

    async def redraw(
        self,
        job: Job,
        *,
        progress: Progress | None = None,
        note: str | None = None,
        delivered: bool = False,
    ) -> None:
        """Show the job's status as it is now (also for a button press that changed it).
        A job deleted with the Delete button gets no status message again."""
        if job.meta.get("deleted_by"):
            return
        current = await self.jobs.get(job.id)  # the caller's copy may predate a Delete
        if current is not None:
            if current.meta.get("deleted_by"):
                return
            if job.message_id is None and current.message_id:
                job = dataclasses.replace(job, message_id=current.message_id)
        reservation = None
        if shows_ledger_cost(job, delivered=delivered):
            reservation = await self.ledger.get(job.ledger_key)
        view = render_status(
            job, self.m, reservation=reservation, progress=progress, note=note,
            delivered=delivered,
        )  # fmt: skip
        ref = await self.poster.show_status(job, view)
        if ref and ref != job.message_id:
            await self.jobs.update(job.id, message_id=ref)

    async def deliver(self, job: Job, clip: Clip) -> str:
        current = await self.jobs.get(job.id) or job
        if current.meta.get("deleted_by"):
            return "deleted"
        posted = await self.poster.find_posted(current)
        if posted is not None:
            await self.redraw(current, delivered=True)
            return posted
        if clip.nsfw and not await self.poster.allows_nsfw(current):
            return await self._withhold(current, clip)
        text = self._clip_text(current)
        buttons = buttons_for(dataclasses.replace(current, status=JobStatus.DELIVERED), on="result")
        ref = await self._post_file(current, clip, text, buttons)
        await self.redraw(current, delivered=True)
        return ref

    async def _post_file(self, job: Job, clip: Clip, text: str, buttons: list[Button]) -> str:
        limit = self.poster.upload_limit(job)
        why = ""
        data: bytes | None = clip.data
        if len(clip.data) > limit:
            data = await asyncio.to_thread(self.fitter, clip.data, limit)
            why = (
                f"The clip is {mb(len(clip.data))}, over this channel's upload limit of "
                f"{mb(limit)}, and could not be shrunk without spoiling it."
            )
            if data is not None:
                text += f"\n(Re-encoded from {mb(len(clip.data))} to fit the upload limit.)"
        if data is not None:
            try:
                return await self.poster.post_clip(
                    job, dataclasses.replace(clip, data=data), text, buttons
                )
            except UploadRefused as exc:
                log.info("job %s: upload refused (%s); posting a link", job.id, exc.reason)
                why = exc.reason
        link = await self._link(job, clip)
        return await self.poster.post_text(job, f"{text}\n{why} {link}", buttons)

    async def _link(self, job: Job, clip: Clip) -> str:
        url = await self.links(job, clip) if self.links is not None else None
        if url:
            return f"Watch or download it here: {url}"
        if job.output_url and job.output_url.startswith("http"):
            lasts = "about an hour" if job.provider == "novita" else "7 days"
            return f"The provider's link (it lasts {lasts}): {job.output_url}"
        return "Ask an operator for the file: it is kept with the job."

    async def _withhold(self, job: Job, clip: Clip) -> str:
        link = await self.links(job, clip) if self.links is not None else None
        private = (
            "The provider flagged your clip as not safe for work, so it was not posted in a "
            f"channel that is not age-restricted. It was made and charged "
            f"{format_usd(job.cost_micros)}."
        )
        if link:
            private += f" Your private link: {link}"
        await self.poster.tell_privately(job, private)
        await self.redraw(
            job,
            delivered=True,
            note="Not posted here: the provider flagged it as not safe for work.",
        )
        return "withheld:nsfw"

    def _clip_text(self, job: Job) -> str:
        words = " · ".join([model_name(job.model), *option_words(job.model, job.params)])
        return (
            f"{self.m.mention(job.user_id)} your clip is ready · {words} · "
            f"{format_usd(job.cost_micros)} charged"
        )


def mb(size: int) -> str:
    """A size in bytes as people read it, e.g. '8.0 MB'."""
    return f"{size / 1_048_576:.1f} MB"
