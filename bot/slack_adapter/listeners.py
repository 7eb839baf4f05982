"""What each Slack interaction does: acknowledge within Slack's 3 seconds, then the work.

Every listener is bolt's "ack, then lazy" pair (the app runs with
`process_before_response=True`, so the HTTP answer is sent the moment the ack function
returns, and the lazy functions run after it):

| interaction | ack (before the HTTP 200) | lazy (after) |
|---|---|---|
| `/animate [prompt]` | ack | `views.open` the modal (the trigger lives 3 s) |
| shortcut *Animate this image* | ack | the modal with the message's image |
| a modal field changes | ack | the exact price, `views.update` (no money) |
| modal submitted | checks needing no image; field errors | read image, reserve, reply, submit |
| a button | ack | the press (`bot.chat.presses`), a private answer |
| `/animate-usage`, `/animate-admin` | ack | the answer, privately |
| App Home opened | ack | `views.publish` the person's budget and clips |

What can only be learnt after the ack (the image's bytes; a cap that filled meanwhile) is
told to the person privately, and costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.chat.actions import Action, Actor, parse_custom_id
from bot.chat.admin import AdminOps
from bot.chat.delivery import ChatSink
from bot.chat.markup import SLACK
from bot.chat.options import enabled_models
from bot.chat.presses import ButtonPresses
from bot.chat.texts import request_summary
from bot.chat.usage import recent_jobs, usage_view
from bot.errors import RequestRefused
from bot.models import AnimateRequest, ImageSource
from bot.service import AnimateService, Submission
from bot.slack_adapter.admin import run_admin
from bot.slack_adapter.blocks import (
    REQUEST_EVENT,
    home_view,
    job_metadata,
    lines_blocks,
    refusal,
    section,
    text_blocks,
)
from bot.slack_adapter.files import (
    SlackFile,
    file_info,
    files_in,
    image_problem,
    image_source,
    is_image,
)
from bot.slack_adapter.modal import (
    CALLBACK_ID,
    IMAGE,
    ModalForm,
    ModalOrigin,
    build_modal,
    field_errors,
    lists_saved_loras,
    read_form,
    shown_spec,
)
from bot.slack_adapter.poster import CHANNEL_GONE, SlackPoster
from bot.slack_adapter.web import slack_error
from providers.catalog import ModelSpec, get_model
from providers.money import format_usd
from providers.params import InvalidParameters

log = logging.getLogger(__name__)

SHORTCUT_ID = "animate_this_image"
MODAL_FIELD = re.compile(r"^(model|duration|resolution|preset|seed|lora:[a-z_]+)$")
BUTTON = re.compile(r"^animate:")
NO_MODELS = (
    "No video model is enabled on this bot yet: ask its operator to set a provider key "
    "(see `python -m bot models`)."
)
FAULT = (
    "Something went wrong on the bot's side before your clip was started, so nothing was "
    "reserved or charged. Please try again in a moment."
)
OLD_PRICES = 10_000  # modal views whose latest change we remember (for ordering updates)


@dataclass(frozen=True)
class Parts:
    """What the listeners work with: the service and the shared chat operations."""

    service: AnimateService
    presses: ButtonPresses
    admin: AdminOps
    poster: SlackPoster
    sink: ChatSink
    file_origins: frozenset[tuple[str, str, int]]
    max_image_bytes: int
    clock: Callable[[], float] = time.time


async def ack_now(ack: AsyncAck) -> None:
    await ack()


class Listeners:
    def __init__(self, parts: Parts) -> None:
        self.p = parts
        self.service = parts.service
        # Our client (one HTTP session for the process), not bolt's per-request `client`:
        # bolt deep-copies the request for lazy listeners, which a shared session forbids.
        self.client = parts.poster.client
        # per modal: its latest field change and a lock, so updates go out one at a time
        # and an older price never overwrites a newer one
        self._views: OrderedDict[str, tuple[str, asyncio.Lock]] = OrderedDict()

    def register(self, bolt: AsyncApp) -> None:
        bolt.command("/animate")(ack=ack_now, lazy=[self.open_modal])
        bolt.shortcut(SHORTCUT_ID)(ack=ack_now, lazy=[self.open_modal_for_message])
        bolt.action(MODAL_FIELD)(ack=ack_now, lazy=[self.show_price])
        bolt.view(CALLBACK_ID)(ack=self.check_submission, lazy=[self.start_clip])
        bolt.action(BUTTON)(ack=ack_now, lazy=[self.press])
        bolt.command("/animate-usage")(ack=ack_now, lazy=[self.usage])
        bolt.command("/animate-admin")(ack=ack_now, lazy=[self.admin])
        bolt.event("app_home_opened")(ack=ack_now, lazy=[self.publish_home])

    # ------------------------------------------------------------------ the modal

    async def open_modal(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        """`/animate [prompt]`: the modal, prompt prefilled, in this channel."""
        origin = ModalOrigin(channel_id=str(body.get("channel_id", "")))
        await self._open(body, respond, origin, prompt=str(body.get("text") or ""))

    async def open_modal_for_message(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        """*Animate this image*: the modal for the message's picture; the clip goes to the
        message's thread."""
        message = body.get("message") or {}
        pictures = await self._pictures(files_in(message.get("files")))
        if not pictures:
            await respond(
                text="That message has no picture to animate: use the shortcut on a message "
                "with a PNG, JPEG or WEBP image, or run /animate and attach one.",
                response_type="ephemeral",
            )
            return
        problem = image_problem(pictures[0], max_bytes=self.p.max_image_bytes)
        if problem is not None:
            await respond(text=problem, response_type="ephemeral")
            return
        origin = ModalOrigin(
            channel_id=str((body.get("channel") or {}).get("id", "")),
            thread_ts=str(message.get("thread_ts") or message.get("ts") or "") or None,
            image=pictures[0],
        )
        await self._open(body, respond, origin, prompt="")

    async def _pictures(self, files: list[SlackFile]) -> list[SlackFile]:
        """The message's pictures; a file Slack did not describe (`check_file_info`) is
        looked up once."""
        pictures = [f for f in files if is_image(f)]
        for f in files if not pictures else ():
            if f.needs_info or not (f.mimetype or f.filetype):
                try:
                    described = await file_info(self.client, f.id)
                except RequestRefused:
                    continue
                if is_image(described):
                    return [described]
        return pictures

    async def _open(
        self,
        body: dict[str, Any],
        respond: AsyncRespond,
        origin: ModalOrigin,
        *,
        prompt: str,
    ) -> None:
        models = enabled_models(self.service)
        if not models:
            await respond(text=NO_MODELS, response_type="ephemeral")
            return
        form = ModalForm(model=models[0].id, prompt=prompt.strip())
        # No database before views.open: the trigger dies 3 seconds after the command.
        price = await self._price(form, server_id=None)
        view = build_modal(models=models, form=form, origin=origin, price=price)
        await self.client.views_open(trigger_id=body["trigger_id"], view=view)

    async def show_price(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """A field changed: the modal again with the exact price of what is chosen now."""
        view = body.get("view") or {}
        view_id = str(view.get("id", ""))
        stamp = str((body.get("actions") or [{}])[0].get("action_ts", ""))
        lock = self._remember(view_id, stamp)
        async with lock:
            if self._views.get(view_id, ("", lock))[0] != stamp:
                return  # a newer change is on its way and will draw the price
            models = enabled_models(self.service)
            if not models:
                return
            form = read_form(view, default_model=models[0].id)
            origin = ModalOrigin.load(view.get("private_metadata"))
            server = _server(context)
            price = await self._price(form, server_id=server)
            saved = []
            if server and lists_saved_loras(shown_spec(models, form)):  # only a URL-LoRA hint
                saved = await self.service.servers.loras(server)
            new = build_modal(models=models, form=form, origin=origin, price=price, saved=saved)
            try:
                await self.client.views_update(view_id=view_id, view=new)
            except SlackApiError as exc:
                log.info("modal %s not updated (%s)", view_id, slack_error(exc))

    def _remember(self, view_id: str, stamp: str) -> asyncio.Lock:
        _, lock = self._views.get(view_id, ("", asyncio.Lock()))
        self._views[view_id] = (stamp, lock)
        self._views.move_to_end(view_id)
        while len(self._views) > OLD_PRICES:
            self._views.popitem(last=False)
        return lock

    async def _price(self, form: ModalForm, *, server_id: str | None) -> str:
        """The price line: the service's exact quote, or what is wrong (no money moves)."""
        try:
            spec = get_model(form.model)
            _, _, quote = await self.service.quote(
                model=form.model,
                prompt=form.prompt.strip() or "-",  # prices do not depend on the prompt
                options=form.options(spec),
                server_id=server_id,
            )
        except RequestRefused as exc:
            return f":warning: {exc.user_message}"
        except InvalidParameters as exc:
            return f":warning: {exc}"
        except Exception:
            log.exception("pricing the modal failed")
            return ":warning: The price could not be worked out; it is checked when you submit."
        return (
            f"*Price: {format_usd(quote.cost_micros)}* · held when you press Animate, "
            "charged only when the clip is made."
        )

    async def check_submission(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Before the ack: every check that needs no image bytes and moves no money; what
        fails is shown on its field and nothing is reserved."""
        view = body["view"]
        models = enabled_models(self.service)
        form = read_form(view, default_model=models[0].id if models else "")
        origin = ModalOrigin.load(view.get("private_metadata"))
        errors: dict[str, str] = {}
        if origin.image is None:
            if len(form.files) != 1:
                errors[IMAGE] = "Attach one picture: a PNG, JPEG or WEBP image."
            else:
                problem = image_problem(form.files[0], max_bytes=self.p.max_image_bytes)
                if problem is not None:
                    errors[IMAGE] = problem
        try:
            not_read_yet = ImageSource(data=b"")  # preflight does not look at the image
            await self.service.preflight(self._request(body, form, origin, not_read_yet))
        except RequestRefused as exc:
            for block, text in field_errors(exc, view, form.model).items():
                errors.setdefault(block, text)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        context["animate_accepted"] = True
        await ack()

    async def start_clip(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """After the ack: read the image, reserve, reply in the channel, submit."""
        if not context.get("animate_accepted"):
            return  # the ack showed errors (or failed): nothing to start
        view = body["view"]
        origin = ModalOrigin.load(view.get("private_metadata"))
        form = read_form(view, default_model="")
        user = str(context.user_id)
        image: SlackFile = origin.image or form.files[0]
        try:
            source = await image_source(self.client, image, origins=self.p.file_origins)
            reserved = await self.service.reserve(self._request(body, form, origin, source))
        except RequestRefused as exc:
            await self.p.poster.whisper(
                origin.channel_id, user, refusal(exc.user_message), thread_ts=origin.thread_ts
            )
            return
        except Exception:
            log.exception("modal %s: starting the clip failed", view["id"])
            if not await self._reserved(str(view["id"])):
                await self.p.poster.whisper(origin.channel_id, user, FAULT)
            return  # a job that was reserved is taken over by a runner when its lease lapses
        if not reserved.duplicate:
            await self._reply_and_submit(reserved, origin, user)

    async def _reply_and_submit(self, reserved: Submission, origin: ModalOrigin, user: str) -> None:
        """The public reply (model, options, exact cost) is the thread the job reports in;
        then the job goes to the provider. A channel the bot cannot post in cancels the job
        before it is submitted: nothing is charged."""
        job = reserved.job
        text = request_summary(job, SLACK)
        try:
            answer = await self.p.poster.client.chat_postMessage(
                channel=origin.channel_id, thread_ts=origin.thread_ts, text=text,
                blocks=[section(text)], metadata=job_metadata(REQUEST_EVENT, job.id),
                unfurl_links=False, unfurl_media=False,
            )  # fmt: skip
            thread = origin.thread_ts or str(answer["ts"])
            await self.service.jobs.update(job.id, channel_id=origin.channel_id, thread_id=thread)
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in CHANNEL_GONE:
                await self.service.cancel(job.id)
                await self.service.submit(reserved)  # cancelled before the provider: voided
                me = await self.p.poster.me()
                await self.p.poster.whisper(
                    origin.channel_id, user, cannot_post(origin.channel_id, error, me.user_id),
                    thread_ts=None,
                )  # fmt: skip
                return
            log.warning("job %s: the reply was not posted (%s); submitting anyway", job.id, error)
        await self.service.submit(reserved)

    async def _reserved(self, view_id: str) -> bool:
        try:
            return await self.service.jobs.get_by_event("slack", view_id) is not None
        except Exception:
            return True  # unknown: say nothing rather than something untrue

    def _request(
        self, body: dict[str, Any], form: ModalForm, origin: ModalOrigin, image: ImageSource
    ) -> AnimateRequest:
        team = _team(body)
        try:
            spec: ModelSpec | None = get_model(form.model)
        except InvalidParameters:
            spec = None  # the service refuses the model, on the model field
        return AnimateRequest(
            platform="slack",
            event_id=str(body["view"]["id"]),  # one modal, one clip: Slack's view id
            user_id=str(body["user"]["id"]),
            server_id=team,
            channel_id=origin.channel_id,
            thread_id=origin.thread_ts,
            image=image,
            prompt=form.prompt,
            model=form.model,
            options=form.options(spec) if spec else {},
            sink={"kind": "slack", "team": team},
        )

    # ------------------------------------------------------------------ buttons

    async def press(
        self,
        body: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        pressed = parse_custom_id(str((body.get("actions") or [{}])[0].get("action_id", "")))
        if pressed is None:
            return
        action, job_id = pressed
        actor = await self._actor(context)
        confirming = action in (Action.CONFIRM_REROLL, Action.CONFIRM_RETRY)
        try:
            result = await self.p.presses.press(
                action, job_id, actor, event_id=str(body["trigger_id"]), m=SLACK
            )
        except RequestRefused as exc:
            await respond(text=exc.user_message, response_type="ephemeral",
                          replace_original=False)  # fmt: skip
            return
        if result.job is not None:
            if result.delete_messages:
                note = f"🗑️ Clip deleted by <@{actor.user_id}>."
                await self.p.poster.delete_job_messages(result.job, note=note)
            elif result.redraw:
                await self.p.sink.redraw(result.job)
        buttons = [result.confirm] if result.confirm is not None else []
        await respond(
            text=result.text,
            blocks=text_blocks(result.text, buttons),
            response_type="ephemeral",
            replace_original=confirming,
        )

    # ------------------------------------------------------------------ usage, admin, home

    async def usage(self, respond: AsyncRespond, context: AsyncBoltContext) -> None:
        actor = Actor("slack", str(context.user_id), _qualified(context))
        view = await usage_view(self.service, actor, SLACK, now=self.p.clock(), chart=False)
        await respond(
            text=view.text(),
            blocks=lines_blocks("Your animate budget", view.lines),
            response_type="ephemeral",
        )

    async def admin(
        self,
        body: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        actor = await self._actor(context)
        try:
            reply = await run_admin(
                self.p.admin, actor, str(body.get("text") or ""), now=self.p.clock()
            )
        except RequestRefused as exc:
            await respond(text=exc.user_message, response_type="ephemeral")
            return
        text = reply.text
        if reply.file is not None:
            try:
                dm = await self.client.conversations_open(users=actor.user_id)
                await self.client.files_upload_v2(
                    channel=str(dm["channel"]["id"]),
                    file=reply.file.data,
                    filename=reply.file.filename,
                    title=reply.file.filename,
                    initial_comment=reply.text,
                )
                text += " I sent the CSV file to you in a direct message."
            except SlackApiError as exc:
                text += f" The file could not be sent to you ({slack_error(exc)})."
        await respond(text=text, blocks=[section(text)], response_type="ephemeral")

    async def publish_home(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        actor = Actor("slack", str(event.get("user") or context.user_id), _qualified(context))
        usage = await usage_view(self.service, actor, SLACK, now=self.p.clock(), chart=False)
        jobs = await recent_jobs(self.service, actor, SLACK)
        await self.client.views_publish(user_id=actor.user_id, view=home_view(usage.lines, jobs))

    async def _actor(self, context: AsyncBoltContext) -> Actor:
        """Who acts, with workspace admin or owner rights read from `users.info` each time
        (the platform's UI is not authorization)."""
        user = str(context.user_id)
        admin = False
        try:
            info = await self.client.users_info(user=user)
            who = info.get("user") or {}
            admin = bool(who.get("is_admin") or who.get("is_owner") or who.get("is_primary_owner"))
        except SlackApiError as exc:
            log.warning("users.info failed for %s (%s): not an admin", user, slack_error(exc))
        return Actor("slack", user, _qualified(context), moderator=admin, admin=admin)


def cannot_post(channel_id: str, error: str, bot_user: str) -> str:
    return (
        f"I can't post in <#{channel_id}> ({error}), so your clip was not started and nothing "
        f"was charged. Invite me with /invite <@{bot_user}>, or use /animate in another channel."
    )


def _team(body: dict[str, Any]) -> str:
    team = body.get("team") or {}
    user = body.get("user") or {}
    return str(
        (team.get("id") if isinstance(team, dict) else None)
        or user.get("team_id")
        or body.get("team_id")
        or ""
    )


def _server(context: AsyncBoltContext) -> str | None:
    team = context.team_id or context.enterprise_id
    return f"slack:{team}" if team else None


def _qualified(context: AsyncBoltContext) -> str | None:
    return _server(context)
