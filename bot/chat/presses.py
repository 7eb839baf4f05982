"""What a button press does, the same on Discord and Slack (see `bot.chat.actions`)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.chat.actions import Action, Actor, Button, button, refusal
from bot.chat.markup import Markup
from bot.chat.texts import cancel_recorded, confirm_again, started_again
from bot.errors import RequestRefused
from bot.models import AnimateRequest, ImageSource
from bot.service import AnimateService
from storage import ACTIVE, Job, JobStatus

_AGAIN = {
    Action.REROLL: (True, Action.CONFIRM_REROLL),
    Action.RETRY: (False, Action.CONFIRM_RETRY),
}
_CONFIRMED = {Action.CONFIRM_REROLL: True, Action.CONFIRM_RETRY: False}


@dataclass(frozen=True)
class PressResult:
    """What to tell the person who pressed (privately), and what changed.

    `confirm`: a button to show with `text` (a price, before it is charged). `job`: the
    pressed job as it is now. `redraw`: the press changed `job` (a Cancel), so its status
    message is to be drawn again. `started`: a job a Confirm started.
    `delete_messages`: remove the bot's status and clip messages of `job`.
    """

    text: str
    confirm: Button | None = None
    job: Job | None = None
    started: Job | None = None
    delete_messages: bool = False
    redraw: bool = False


class ButtonPresses:
    def __init__(self, service: AnimateService) -> None:
        self.service = service
        self.jobs = service.jobs

    async def press(
        self, action: Action, job_id: str, actor: Actor, *, event_id: str, m: Markup
    ) -> PressResult:
        """Carry out a press; raises RequestRefused (a sentence) when it cannot be done.
        `event_id`: the platform's id for this press, the idempotency key of any charge."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise RequestRefused("This clip is no longer known to the bot.")
        why = refusal(action, actor, job)
        if why is not None:
            raise RequestRefused(why)
        if action is Action.CANCEL:
            job = await self.service.cancel(job.id, by_user=actor.qualified, moderator=True)
            return PressResult(cancel_recorded(job), job=job, redraw=True)
        if action is Action.DELETE:
            return await self._delete(job, actor)
        if action in _AGAIN:
            reroll, confirm = _AGAIN[action]
            quote = await self.service.quote_again(
                job.id, self._request(job, actor, event_id), reroll=reroll
            )
            return PressResult(
                confirm_again(quote.cost_micros, reroll=reroll, m=m),
                confirm=button(confirm, job.id),
                job=job,
            )
        reroll = _CONFIRMED[action]
        sub = await self.service.animate_again(
            job.id, self._request(job, actor, event_id), reroll=reroll
        )
        return PressResult(started_again(sub.job, reroll=reroll, m=m), job=job, started=sub.job)

    async def _delete(self, job: Job, actor: Actor) -> PressResult:
        if job.status in ACTIVE and job.status is not JobStatus.COMPLETED:
            if not job.cancel_requested:
                job = await self.service.cancel(job.id, by_user=actor.qualified, moderator=True)
            text = f"Deleted. {cancel_recorded(job)}"
        else:
            text = "Deleted."
        job = await self.jobs.update(job.id, meta={**job.meta, "deleted_by": actor.qualified})
        return PressResult(text, job=job, delete_messages=True)

    @staticmethod
    def _request(job: Job, actor: Actor, event_id: str) -> AnimateRequest:
        """Where a re-roll or retry goes: the first clip's channel and thread."""
        return AnimateRequest(
            platform=job.platform,
            event_id=event_id,
            user_id=actor.qualified,
            server_id=job.server_id,
            channel_id=job.channel_id,
            thread_id=job.thread_id,
            image=ImageSource(data=b"-"),  # replaced by the first clip's stored image
            prompt=job.prompt,
            model=job.model,
            sink=dict(job.sink),
            role_ids=actor.role_ids,
        )
