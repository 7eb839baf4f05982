"""How the runner's chat sink reaches Slack: `ChatPoster` over the Web API and the bot token
alone, so any process running the job runner (a `worker` too) delivers Slack jobs.

- The status message is one `chat.postMessage` in the job's thread, then `chat.update`.
- The clip is uploaded into the thread with `files_upload_v2` (getUploadURLExternal, the
  upload, completeUploadExternal) with the requester mentioned in the file's comment.
- Exactly once: every message about a job carries its id in the message metadata, and the
  clip file is named after the job; before posting, the thread is read
  (`conversations.replies` with `include_all_metadata`) for what this bot already posted.
- A channel the bot can no longer post in does not stop the runner: statuses are skipped,
  a clip goes to the requester's direct messages as a link, with the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.actions import Button
from bot.chat.delivery import UploadRefused
from bot.chat.markup import SLACK, Markup
from bot.chat.status import StatusView
from bot.chat.texts import model_name
from bot.models import raw_id
from bot.sinks import Clip
from bot.slack_adapter.blocks import (
    CLIP_EVENT,
    REQUEST_EVENT,
    STATUS_EVENT,
    job_metadata,
    section,
    status_blocks,
    text_blocks,
)
from bot.slack_adapter.web import BotIdentity, identify, slack_error
from storage import Job

log = logging.getLogger(__name__)

# Slack documents no per-file limit for bots beyond its 1 GB file limit; a workspace that
# restricts sizes answers `file_upload_size_restricted`, handled as a refused upload.
SLACK_FILE_LIMIT = 1024 * 1024 * 1024
THREAD_PAGES = 10  # at most 2,000 replies read when looking for what was already posted
CHANNEL_GONE = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "channel_is_archived",
     "restricted_action", "restricted_action_read_only_channel", "ekm_access_denied"}
)  # fmt: skip
UPLOAD_REFUSED = {
    "file_upload_size_restricted": "This workspace does not allow files this large.",
    "file_uploads_disabled": "File uploads are turned off in this workspace.",
    "file_uploads_except_images_disabled": "This workspace only allows image uploads.",
}
_STATUS = re.compile(r"status: (\d{3})")


class ChannelGone(Exception):
    """The bot cannot post in the job's channel any more (archived, removed, deleted)."""


def clip_filename(job: Job) -> str:
    """The uploaded file's name: how a restarted bot recognises a clip it posted (a file
    upload takes no message metadata)."""
    return f"animate-{job.id}.mp4"


class SlackPoster:
    markup: Markup = SLACK

    def __init__(self, client: AsyncWebClient, *, upload_limit: int = SLACK_FILE_LIMIT) -> None:
        self.client = client
        self.limit = upload_limit
        self._me: BotIdentity | None = None

    async def me(self) -> BotIdentity:
        if self._me is None:
            self._me = await identify(self.client)
        return self._me

    # --- ChatPoster ---

    def upload_limit(self, job: Job) -> int:
        return self.limit

    async def allows_nsfw(self, job: Job) -> bool:
        """Slack has no age-restricted channels: a flagged clip is never posted."""
        return False

    async def show_status(self, job: Job, view: StatusView) -> str:
        text, blocks = view.text(), status_blocks(view)
        meta = job_metadata(STATUS_EVENT, job.id)
        try:
            ts = job.message_id or await self._find_ts(job, STATUS_EVENT)
            if ts:
                try:
                    await self.client.chat_update(
                        channel=_channel(job), ts=ts, text=text, blocks=blocks, metadata=meta
                    )
                    return ts
                except SlackApiError as exc:
                    if slack_error(exc) != "message_not_found":
                        raise
            return await self._post(job, text, blocks, meta)
        except ChannelGone as exc:
            log.warning("job %s: status not shown, the channel is gone (%s)", job.id, exc)
            return job.message_id or ""

    async def find_posted(self, job: Job) -> str | None:
        try:
            async for message in self._own_messages(job):
                ref = self._clip_ref(job, message)
                if ref is not None:
                    return ref
        except ChannelGone:
            return None
        return None

    async def post_clip(self, job: Job, clip: Clip, text: str, buttons: list[Button]) -> str:
        """The file into the thread (into the channel when the thread is gone); the buttons
        stay on the status message (a file upload carries none)."""
        thread = job.thread_id
        while True:
            try:
                answer = await self.client.files_upload_v2(
                    channel=_channel(job),
                    thread_ts=thread,
                    file=clip.data,
                    filename=clip_filename(job),
                    title=f"{model_name(job.model)} clip",
                    initial_comment=text,
                )
                break
            except SlackApiError as exc:
                error = slack_error(exc)
                if error == "thread_not_found" and thread is not None:
                    thread = None
                    continue
                if error in UPLOAD_REFUSED:
                    raise UploadRefused(UPLOAD_REFUSED[error]) from None
                if error in CHANNEL_GONE:
                    why = f"I can no longer post files in that channel ({error})."
                    raise UploadRefused(why) from None
                raise
            except SlackRequestError as exc:  # the upload itself (step 2) was refused
                status = _STATUS.search(str(exc))
                if status and status.group(1) == "413":
                    raise UploadRefused("Slack refused the file as too large.") from None
                raise
        files = answer.get("files") or [answer.get("file") or {}]
        return await self._file_ref(files[0] if files else {})

    async def post_text(self, job: Job, text: str, buttons: list[Button]) -> str:
        """In the thread; when the channel is gone, to the requester directly."""
        meta = job_metadata(CLIP_EVENT, job.id)
        try:
            ts = await self._post(job, text, text_blocks(text, buttons), meta)
            channel = _channel(job)
        except ChannelGone:
            answer = await self.client.chat_postMessage(
                channel=raw_id(job.user_id), text=text, blocks=text_blocks(text), metadata=meta
            )
            ts, channel = str(answer["ts"]), str(answer.get("channel") or raw_id(job.user_id))
        return await self._message_ref(channel, ts)

    async def tell_privately(self, job: Job, text: str) -> None:
        """A direct message from the app (it lasts); in the job's thread, visible only to
        them, when the direct message fails."""
        user = raw_id(job.user_id)
        try:
            await self.client.chat_postMessage(channel=user, text=text, blocks=[section(text)])
            return
        except SlackApiError as exc:
            log.info("job %s: direct message refused (%s)", job.id, slack_error(exc))
        try:
            await self.client.chat_postEphemeral(
                channel=_channel(job), user=user, text=text, thread_ts=job.thread_id
            )
        except SlackApiError as exc:
            log.warning("job %s: could not tell %s privately (%s)", job.id, user, slack_error(exc))

    async def whisper(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        """An answer the person sees where they are (visible only to them), or a direct
        message when the bot cannot post there."""
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=[section(text)], thread_ts=thread_ts
            )
            return
        except SlackApiError as exc:
            log.info("ephemeral answer to %s refused (%s); direct message", user, slack_error(exc))
        try:
            await self.client.chat_postMessage(channel=user, text=text, blocks=[section(text)])
        except SlackApiError as exc:
            log.warning("could not answer %s at all (%s)", user, slack_error(exc))

    # --- the Delete button ---

    async def delete_job_messages(self, job: Job, *, note: str) -> None:
        """Remove the job's status and clip messages; the request message (the thread's
        start) keeps only `note`, so the thread does not turn into a tombstone."""
        channel = _channel(job)
        found: list[Mapping[str, Any]] = []
        try:
            found = [m async for m in self._own_messages(job)]
        except ChannelGone:
            return
        for message in found:
            kind = _event_of(message, job.id)
            ts = str(message.get("ts", ""))
            if kind == REQUEST_EVENT:
                await self._ignore_gone(
                    self.client.chat_update(
                        channel=channel, ts=ts, text=note, blocks=[section(note)],
                        metadata=job_metadata(REQUEST_EVENT, job.id),
                    )
                )  # fmt: skip
            elif kind is not None:
                await self._ignore_gone(self.client.chat_delete(channel=channel, ts=ts))
            for f in message.get("files") or ():
                if f.get("name") == clip_filename(job):
                    await self._ignore_gone(self.client.files_delete(file=str(f.get("id"))))
        if job.message_id and not any(str(m.get("ts")) == job.message_id for m in found):
            await self._ignore_gone(self.client.chat_delete(channel=channel, ts=job.message_id))

    # --- helpers ---

    async def _post(
        self, job: Job, text: str, blocks: list[dict[str, Any]], meta: dict[str, Any]
    ) -> str:
        thread = job.thread_id
        for attempt in range(2):
            try:
                answer = await self.client.chat_postMessage(
                    channel=_channel(job), thread_ts=thread, text=text, blocks=blocks,
                    metadata=meta, unfurl_links=False, unfurl_media=False,
                )  # fmt: skip
                return str(answer["ts"])
            except SlackApiError as exc:
                error = slack_error(exc)
                if error == "thread_not_found" and attempt == 0:
                    thread = None  # the thread's first message was deleted: the channel
                    continue
                if error in CHANNEL_GONE:
                    raise ChannelGone(error) from None
                raise
        raise AssertionError("unreachable")

    async def _own_messages(self, job: Job) -> AsyncIterator[Mapping[str, Any]]:
        """This bot's messages in the job's thread that are about the job."""
        if not job.thread_id or not job.channel_id:
            return
        me = await self.me()
        cursor: str | None = None
        for _page in range(THREAD_PAGES):
            try:
                answer = await self.client.conversations_replies(
                    channel=job.channel_id, ts=job.thread_id, include_all_metadata=True,
                    limit=200, cursor=cursor,
                )  # fmt: skip
            except SlackApiError as exc:
                error = slack_error(exc)
                if error == "thread_not_found":
                    return
                if error in CHANNEL_GONE:
                    raise ChannelGone(error) from None
                raise
            for message in answer.get("messages") or ():
                mine = message.get("user") == me.user_id or (
                    me.bot_id and message.get("bot_id") == me.bot_id
                )
                if mine and (
                    _event_of(message, job.id) is not None or self._clip_file(job, message)
                ):
                    yield message
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    async def _find_ts(self, job: Job, event_type: str) -> str | None:
        async for message in self._own_messages(job):
            if _event_of(message, job.id) == event_type:
                return str(message["ts"])
        return None

    def _clip_file(self, job: Job, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        for f in message.get("files") or ():
            if isinstance(f, Mapping) and f.get("name") == clip_filename(job):
                return f
        return None

    def _clip_ref(self, job: Job, message: Mapping[str, Any]) -> str | None:
        f = self._clip_file(job, message)
        if f is not None:
            return str(f.get("permalink") or f"file:{f.get('id')}")
        if _event_of(message, job.id) == CLIP_EVENT:
            return f"message:{message.get('ts')}"
        return None

    async def _file_ref(self, file: Mapping[str, Any]) -> str:
        """The clip's permalink (App Home links to it), else its file id."""
        file_id = str(file.get("id", ""))
        if file.get("permalink"):
            return str(file["permalink"])
        try:
            info = await self.client.files_info(file=file_id)
            return str((info.get("file") or {}).get("permalink") or f"file:{file_id}")
        except SlackApiError:
            return f"file:{file_id}"

    async def _message_ref(self, channel: str, ts: str) -> str:
        try:
            answer = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
            return str(answer.get("permalink") or f"message:{ts}")
        except SlackApiError:
            return f"message:{ts}"

    @staticmethod
    async def _ignore_gone(call: Any) -> None:
        try:
            await call
        except SlackApiError as exc:
            if slack_error(exc) not in {"message_not_found", "file_not_found", "file_deleted",
                                        "cant_delete_message", *CHANNEL_GONE}:  # fmt: skip
                raise


def _channel(job: Job) -> str:
    if not job.channel_id:
        raise ChannelGone("the job names no channel")
    return job.channel_id


def _event_of(message: Mapping[str, Any], job_id: str) -> str | None:
    """The metadata event type of a message about `job_id`, else None."""
    meta = message.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    payload = meta.get("event_payload")
    if isinstance(payload, Mapping) and payload.get("job_id") == job_id:
        return str(meta.get("event_type"))
    return None
