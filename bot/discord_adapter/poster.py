"""Delivery on Discord: `bot.chat.delivery.ChatPoster` over Discord's REST API.

Everything goes through the bot token, never through an interaction token (it dies after 15
minutes and renders can take longer), so any process that runs the job runner - the
`discord` process or a `worker` with no gateway connection - delivers any Discord job.

- A job goes to its thread; when the thread was deleted (or locked), to its channel.
- The clip and the first status message carry a message `nonce` with `enforce_nonce`
  (discord.py sets both), so a post repeated within Discord's nonce window returns the first
  message instead of a second one; past that window `find_posted` finds the bot's own
  message for the job in the thread's history. Together with the message link the runner
  records, a restarted bot posts each clip once.
- 429s and 5xx are retried by discord.py as it always does (the bucket's `retry_after`;
  500/502/504 with backoff, five tries); what still fails is left to the runner's own
  delivery retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import discord

from bot.chat.actions import Button
from bot.chat.delivery import UploadRefused, mb
from bot.chat.markup import DISCORD, Markup
from bot.chat.status import StatusView
from bot.discord_adapter.gateway import no_voice, token_refused
from bot.discord_adapter.render import (
    NO_PINGS,
    fit_text,
    message_url,
    parse_message_url,
    ping_only,
    status_message,
)
from bot.discord_adapter.views import buttons_view
from bot.models import raw_id
from bot.sinks import Clip
from storage import Job

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's default for every server
HISTORY_LOOKBACK = 200  # messages after the job started that `find_posted` reads
THREAD_TYPES = {10, 11, 12}  # announcement, public and private threads
TOO_LARGE = 40005


class RestClient:
    """A discord.py client logged in over REST only (no gateway), shared by everything that
    posts for the runner. Logs in on first use: a worker that never delivers to Discord
    never calls Discord."""

    def __init__(self, token: str) -> None:
        no_voice()
        self._token = token
        # The same intents as the gateway client, though this one never connects.
        self._client = discord.Client(intents=discord.Intents(guilds=True))
        self._lock = asyncio.Lock()
        self._ready = False

    async def client(self) -> discord.Client:
        if self._ready:
            return self._client
        async with self._lock:
            if not self._ready:
                try:
                    await self._client.login(self._token)
                except discord.LoginFailure:
                    raise token_refused() from None
                self._ready = True
        return self._client

    async def close(self) -> None:
        await self._client.close()


class DiscordPoster:
    markup: Markup = DISCORD

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    # --- what the sink asks ---

    def upload_limit(self, job: Job) -> int:
        """Recorded at /animate: the smaller of the interaction's `attachment_size_limit`
        and the server's own limit (a bot has no Nitro of its own)."""
        return int(job.sink.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)

    async def allows_nsfw(self, job: Job) -> bool:
        """Whether the channel the clip goes to is age-restricted (a thread: its parent's
        setting). Any doubt - an error, a channel we cannot read - is a no."""
        client = await self.rest.client()
        for target in self._targets(job):
            try:
                data: Any = await client.http.get_channel(target)
                if data.get("type") in THREAD_TYPES and data.get("parent_id"):
                    data = await client.http.get_channel(int(data["parent_id"]))
                return bool(data.get("nsfw"))
            except (discord.NotFound, discord.Forbidden):
                continue
            except discord.HTTPException:
                return False
        return False

    async def show_status(self, job: Job, view: StatusView) -> str:
        client = await self.rest.client()
        kwargs = status_message(view)
        where = parse_message_url(job.message_id)
        if where is not None:
            channel_id, message_id = where
            try:
                message = client.get_partial_messageable(channel_id).get_partial_message(
                    message_id
                )
                await message.edit(**kwargs)
                return job.message_id or ""
            except (discord.NotFound, discord.Forbidden):
                log.info("job %s: status message gone; posting it again", job.id)
        first = job.message_id is None
        sent = await self._send(job, nonce=f"animate-s-{job.id}" if first else None, **kwargs)
        return message_url(job.server_id, sent.channel.id, sent.id)

    async def find_posted(self, job: Job) -> str | None:
        """The bot's own message carrying this job's result buttons, posted after the job
        started, other than its status message (a restart between posting and recording)."""
        client = await self.rest.client()
        me = client.user.id if client.user else None
        status = parse_message_url(job.message_id)
        started = discord.Object(
            discord.utils.time_snowflake(datetime.fromtimestamp(job.created_at - 60, UTC))
        )
        for target in self._targets(job):
            channel = client.get_partial_messageable(target)
            try:
                async for msg in channel.history(
                    limit=HISTORY_LOOKBACK, after=started, oldest_first=True
                ):
                    if msg.author.id != me or (status and msg.id == status[1]):
                        continue
                    if _names_job(msg, job.id):
                        return message_url(job.server_id, target, msg.id)
            except (discord.NotFound, discord.Forbidden):
                continue
        return None

    async def post_clip(self, job: Job, clip: Clip, text: str, buttons: list[Button]) -> str:
        def file() -> discord.File:
            return discord.File(io.BytesIO(clip.data), filename=clip.filename)

        try:
            sent = await self._send(
                job,
                content=fit_text(text),
                file_factory=file,
                view=buttons_view(buttons),
                allowed_mentions=ping_only(job.user_id),
                nonce=f"animate-c-{job.id}",
            )
        except discord.HTTPException as exc:
            if exc.status == 413 or exc.code == TOO_LARGE:
                raise UploadRefused(
                    f"Discord refused the {mb(len(clip.data))} file: it is over this "
                    "server's upload limit."
                ) from exc
            if isinstance(exc, discord.Forbidden):
                raise UploadRefused(
                    "I may not attach files here (the Attach Files permission is missing)."
                ) from exc
            raise
        return message_url(job.server_id, sent.channel.id, sent.id)

    async def post_text(self, job: Job, text: str, buttons: list[Button]) -> str:
        sent = await self._send(
            job,
            content=fit_text(text),
            view=buttons_view(buttons),
            allowed_mentions=ping_only(job.user_id),
            nonce=f"animate-l-{job.id}",
        )
        return message_url(job.server_id, sent.channel.id, sent.id)

    async def tell_privately(self, job: Job, text: str) -> None:
        """A direct message (an ephemeral reply dies with its 15-minute token). When the
        person's DMs are closed, a public line says only that a private note could not
        reach them."""
        client = await self.rest.client()
        user = discord.Object(int(raw_id(job.user_id)))
        try:
            dm = await client.create_dm(user)
            await dm.send(fit_text(text), allowed_mentions=NO_PINGS)
        except discord.Forbidden:
            await self._send(
                job,
                content=f"{self.markup.mention(job.user_id)} I have a private note about your "
                "clip but could not send it: your direct messages are closed to me.",
                allowed_mentions=ping_only(job.user_id),
            )

    async def delete(self, ref: str | None) -> None:
        """Delete a message the sink recorded (the Delete button); gone already is fine."""
        where = parse_message_url(ref)
        if where is None:
            return
        client = await self.rest.client()
        channel_id, message_id = where
        message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
        with contextlib.suppress(discord.NotFound):
            await message.delete()

    # --- plumbing ---

    @staticmethod
    def _targets(job: Job) -> list[int]:
        """Where the job's messages go: its thread, then its channel."""
        ids = [job.thread_id, job.channel_id]
        return [int(i) for n, i in enumerate(ids) if i and i not in ids[:n]]

    async def _send(
        self,
        job: Job,
        *,
        file_factory: Callable[[], discord.File] | None = None,
        **kwargs: Any,
    ) -> discord.Message:
        """Post in the job's thread, or in its channel when the thread is gone or locked."""
        client = await self.rest.client()
        targets = self._targets(job)
        if not targets:
            raise RuntimeError(f"job {job.id} has no channel to post in")
        for n, target in enumerate(targets):
            if file_factory is not None:
                kwargs["file"] = file_factory()  # a File is read once per request
            try:
                return await client.get_partial_messageable(target).send(**kwargs)
            except (discord.NotFound, discord.Forbidden) as exc:
                if n == len(targets) - 1:
                    raise
                log.info("job %s: thread %s unusable (%s); using the channel", job.id, target, exc)
        raise AssertionError("unreachable")


def _names_job(message: discord.Message, job_id: str) -> bool:
    suffix = f":{job_id}"
    for row in message.components:
        for child in getattr(row, "children", []):
            if str(getattr(child, "custom_id", "") or "").endswith(suffix):
                return True
    return any(a.filename == f"{job_id}.mp4" for a in message.attachments)
