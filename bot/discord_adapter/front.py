"""What each Discord interaction does: read it, call the service or `bot.chat`, answer it.

The order of /animate follows Discord's rules (discord.py docs, "Interaction"; Discord's
"Receiving and Responding"): answer within 3 seconds, so the bot defers - visibly, since the
reply with the price is public - before anything is awaited. It then reads the attachment
(its link expires), reserves through `AnimateService`, turns the deferred answer into the
public reply, opens a thread on it (or uses the thread it was run in), records where, and
hands the job to the provider. A refusal is one ephemeral message and costs nothing.

Discord fixes whether an answer is ephemeral when it is deferred, and the first follow-up
to a deferred answer replaces it with the same visibility; so a refusal found after the
visible defer is sent as an ephemeral follow-up once the placeholder was resolved, and the
placeholder is then deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import discord

from bot.app import App
from bot.chat.actions import Action
from bot.chat.admin import AdminOps
from bot.chat.chart import spend_chart
from bot.chat.delivery import ChatSink
from bot.chat.markup import DISCORD
from bot.chat.options import enabled_models, lora_suggestions, parse_loras
from bot.chat.presses import ButtonPresses
from bot.chat.texts import missing_permissions as missing_text
from bot.chat.texts import refused, request_summary
from bot.chat.usage import recent_jobs, usage_view
from bot.discord_adapter import events
from bot.discord_adapter.poster import DiscordPoster
from bot.discord_adapter.render import (
    NO_PINGS,
    app_choices,
    fit_text,
    models_text,
    thread_name,
)
from bot.discord_adapter.views import FORM_ID, AnimateForm, buttons_view
from bot.errors import BotError
from storage import Job

log = logging.getLogger(__name__)

ARCHIVE_AFTER_MIN: Final = 1440  # a clip's thread archives after a quiet day
NO_IMAGE = (
    "That message has no image to animate: use it on a message with an attached picture "
    "(PNG, JPEG or WEBP)."
)
GONE = "The message with the image was deleted before the form was sent; nothing was charged."
FAULT = "Something went wrong on the bot's side and has been logged; please try again."


class DiscordFrontDoor:
    def __init__(self, app: App, sink: ChatSink, *, clock: Callable[[], float] = time.time):
        self.app = app
        self.service = app.service
        self.sink = sink
        self.buttons = ButtonPresses(app.service)
        self.admin = AdminOps(app.service)
        self.m = DISCORD
        self.clock = clock
        self.closing = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- lifetime: finish what was started before the process stops ---

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def idle(self) -> None:
        """Until no interaction is in hand."""
        await self._idle.wait()

    async def drain(self, within_s: float = 30.0) -> None:
        """Stop taking interactions and wait for those in hand (a reservation between its
        reply and its submit holds a lease; finishing it hands the job over at once)."""
        self.closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within_s)

    # --- /animate and "Animate this image" ---

    def default_model(self) -> str:
        models = enabled_models(self.service)
        return models[0].id if models else "openvideo"

    async def animate_command(
        self,
        interaction: discord.Interaction[Any],
        *,
        image: discord.Attachment,
        prompt: str,
        model: str | None,
        options: dict[str, Any],
        loras: str | None,
    ) -> None:
        async with self.working():
            if await self._refuse_early(interaction):
                return
            await interaction.response.defer(thinking=True)
            await self._start(interaction, image.url, prompt, model, options, loras)

    async def open_form(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        """The message context menu: a form for the prompt and options of its image."""
        if await self._refuse_early(interaction):
            return
        if events.message_image(message) is None:
            await interaction.response.send_message(NO_IMAGE, ephemeral=True)
            return
        names = ", ".join(spec.id for spec in enabled_models(self.service))
        form = AnimateForm(
            message.channel.id, message.id, model=self.default_model(), models=names
        )
        await interaction.response.send_modal(form)
        form.stop()  # submits are routed by the form's id (`submit_form`), on any process

    async def submit_form(self, interaction: discord.Interaction[Any]) -> None:
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        match = FORM_ID.match(custom_id)
        if match is None:
            return
        async with self.working():
            if await self._refuse_early(interaction):
                return
            await interaction.response.defer(thinking=True)
            values = events.form_values(interaction.data)
            try:
                channel = interaction.client.get_partial_messageable(int(match["channel"]))
                message = await channel.fetch_message(int(match["message"]))
            except (discord.NotFound, discord.Forbidden):
                await self._refuse_after_defer(interaction, GONE)
                return
            image_url = events.message_image(message)
            if image_url is None:
                await self._refuse_after_defer(interaction, NO_IMAGE)
                return
            options = {"duration": values.get("duration"), "resolution": values.get("resolution")}
            await self._start(
                interaction,
                image_url,
                values.get("prompt", ""),
                values.get("model") or None,
                options,
                values.get("loras"),
            )

    async def _start(
        self,
        interaction: discord.Interaction[Any],
        image_url: str,
        prompt: str,
        model: str | None,
        options: dict[str, Any],
        loras: str | None,
    ) -> None:
        try:
            if loras and loras.strip():
                options = {**options, "loras": parse_loras(loras)}
            req = events.animate_request(
                interaction,
                image_url=image_url,
                prompt=prompt,
                model=(model or self.default_model()).strip(),
                options=options,
            )
            reserved = await self.service.reserve(req)
        except BotError as exc:
            await self._refuse_after_defer(interaction, exc.user_message)
            return
        if reserved.duplicate:
            return  # the same interaction again: its reply was made the first time
        try:
            await self._reply_in_thread(interaction, reserved.job)
        except discord.HTTPException as exc:
            log.warning("job %s: could not post the reply or thread (%s)", reserved.job.id, exc)
        finally:
            await self.service.submit(reserved)

    async def _reply_in_thread(self, interaction: discord.Interaction[Any], job: Job) -> None:
        message = await interaction.edit_original_response(
            content=fit_text(request_summary(job, self.m)), allowed_mentions=NO_PINGS
        )
        thread_id = job.thread_id
        if thread_id is None and events.can_open_thread(interaction):
            try:
                thread = await message.create_thread(
                    name=thread_name(job), auto_archive_duration=ARCHIVE_AFTER_MIN
                )
                thread_id = str(thread.id)
            except discord.HTTPException as exc:  # e.g. the channel's thread limit
                log.info("job %s: no thread (%s); the status goes to the channel", job.id, exc)
        await self.app.db.jobs.update(job.id, channel_id=job.channel_id, thread_id=thread_id)

    # --- refusals ---

    async def _refuse_early(self, interaction: discord.Interaction[Any]) -> bool:
        """Refuse before acknowledging, from the payload alone: a DM, missing permissions."""
        if self.closing:
            text = "The bot is restarting; please try again in a minute. Nothing was charged."
        elif interaction.guild_id is None:
            text = "Use /animate in a server channel. Nothing was charged."
        else:
            missing = events.missing_permissions(interaction)
            if not missing:
                return False
            text = missing_text(missing)
        await interaction.response.send_message(text, ephemeral=True)
        return True

    async def _refuse_after_defer(self, interaction: discord.Interaction[Any], text: str) -> None:
        await interaction.edit_original_response(content="No clip was started.")
        await interaction.followup.send(refused(text), ephemeral=True)
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()

    # --- autocomplete ---

    async def suggest_loras(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[discord.app_commands.Choice[str]]:
        saved = await self.admin.list_loras(events.actor_for(interaction))
        model = getattr(interaction.namespace, "model", None) or self.default_model()
        return app_choices(lora_suggestions(model, current, saved))

    # --- buttons ---

    async def press(
        self, interaction: discord.Interaction[Any], action: Action | None, job_id: str
    ) -> None:
        async with self.working():
            await interaction.response.defer(ephemeral=True, thinking=True)
            if action is None:
                await interaction.followup.send(
                    "This button belongs to another version of the bot; nothing was done.",
                    ephemeral=True,
                )
                return
            actor = events.actor_for(interaction)
            try:
                result = await self.buttons.press(
                    action, job_id, actor, event_id=str(interaction.id), m=self.m
                )
            except BotError as exc:
                await interaction.followup.send(refused(exc.user_message), ephemeral=True)
                return
            view = buttons_view([result.confirm]) if result.confirm else None
            extra: dict[str, Any] = {"view": view} if view is not None else {}
            await interaction.followup.send(fit_text(result.text), ephemeral=True, **extra)
            if result.delete_messages and result.job is not None:
                await self._delete_messages(result.job)
            elif result.redraw and result.job is not None:
                await self.sink.redraw(result.job)

    async def _delete_messages(self, job: Job) -> None:
        poster = self.sink.poster
        if isinstance(poster, DiscordPoster):
            for ref in (job.message_id, job.delivered_ref):
                try:
                    await poster.delete(ref)
                except discord.HTTPException as exc:
                    log.warning("job %s: could not delete %s (%s)", job.id, ref, exc)

    # --- /usage, /models, /jobs ---

    async def usage(self, interaction: discord.Interaction[Any]) -> None:
        async with self.working():
            await interaction.response.defer(ephemeral=True, thinking=True)
            view = await usage_view(
                self.service, events.actor_for(interaction), self.m, now=self.clock()
            )
            chart = spend_chart(view.daily_spend, title="Your spend, last 30 days")
            await interaction.followup.send(
                fit_text(view.text()),
                file=discord.File(io.BytesIO(chart), filename="spend-30-days.png"),
                ephemeral=True,
            )

    async def models(self, interaction: discord.Interaction[Any]) -> None:
        pages = models_text(self.service, self.m)
        await interaction.response.send_message(pages[0], ephemeral=True)
        for page in pages[1:]:
            await interaction.followup.send(page, ephemeral=True)

    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        async with self.working():
            await interaction.response.defer(ephemeral=True, thinking=True)
            lines = await recent_jobs(self.service, events.actor_for(interaction), self.m)
            await interaction.followup.send(fit_text("\n".join(lines)), ephemeral=True)

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception) -> None:
        """Whatever went wrong unexpectedly: logged, and one sentence for the person."""
        log.error("interaction %s failed", interaction.id, exc_info=error)
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(FAULT, ephemeral=True)
            else:
                await interaction.response.send_message(FAULT, ephemeral=True)
