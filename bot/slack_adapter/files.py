"""Which Slack file a request means, and how the bot reads it.

A Slack file is private: its `url_private_download` answers only with the bot token
(`Authorization: Bearer xoxb-...`, scope files:read) and otherwise with an HTML login page,
which the image reader refuses as "a web page, not an image". So:

- the modal's `file_input` hands us the file in `view.state.values` (and the shortcut in the
  message's `files`); when the download link is missing or Slack says `check_file_info`,
  `files.info` gives it;
- the link must be on Slack's own file host (`files.slack.com`, or the host of
  `SLACK_API_URL` for a proxy or a test fake), checked here before the token is attached;
- the service gets `ImageSource(url=..., headers={"Authorization": "Bearer ..."})`;
  `bot.images` sends those headers only to that origin (never across a redirect) and
  checks the real bytes (type, size, dimensions) before any money moves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import RequestRefused
from bot.images.limits import human_size
from bot.models import ImageSource
from bot.slack_adapter.web import origin_of, slack_error

# Slack's `filetype` for the pictures the image reader takes (it sniffs the bytes anyway).
IMAGE_FILETYPES = frozenset({"png", "jpg", "jpeg", "gif", "webp", "bmp", "tiff", "tif"})
ACCEPTED = "a PNG, JPEG, WEBP, GIF, BMP or TIFF image"


@dataclass(frozen=True)
class SlackFile:
    id: str
    name: str = ""
    mimetype: str = ""
    filetype: str = ""
    size: int | None = None
    url: str | None = None  # url_private_download (else url_private)
    needs_info: bool = False  # Slack said to ask files.info for the details

    @classmethod
    def from_payload(cls, obj: Mapping[str, Any]) -> SlackFile:
        size = obj.get("size")
        return cls(
            id=str(obj.get("id", "")),
            name=str(obj.get("name") or obj.get("title") or ""),
            mimetype=str(obj.get("mimetype") or ""),
            filetype=str(obj.get("filetype") or "").lower(),
            size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
            url=obj.get("url_private_download") or obj.get("url_private") or None,
            needs_info=obj.get("file_access") == "check_file_info",
        )

    def to_metadata(self) -> dict[str, Any]:
        """What a modal's private_metadata keeps about the shortcut's image (short)."""
        return {"id": self.id, "name": self.name[:80], "url": self.url}

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> SlackFile:
        return cls(id=str(data.get("id", "")), name=str(data.get("name", "")),
                   url=data.get("url") or None, needs_info=not data.get("url"))  # fmt: skip


def files_in(entries: Iterable[Mapping[str, Any]] | None) -> list[SlackFile]:
    return [SlackFile.from_payload(f) for f in entries or () if isinstance(f, Mapping)]


def is_image(f: SlackFile) -> bool:
    return f.mimetype.startswith("image/") or f.filetype in IMAGE_FILETYPES


def image_problem(f: SlackFile, *, max_bytes: int) -> str | None:
    """What is wrong with the file as far as Slack describes it (the bytes are checked
    later); None when it looks like an image we take."""
    if (f.mimetype or f.filetype) and not is_image(f):
        kind = f.filetype.upper() or f.mimetype or "file"
        return f"{f.name or 'That file'} is a {kind}, not a picture: attach {ACCEPTED}."
    if f.size is not None and f.size > max_bytes:
        return (
            f"{f.name or 'The image'} is {human_size(f.size)}; the limit is "
            f"{human_size(max_bytes)}. Attach a smaller image."
        )
    return None


async def image_source(
    client: AsyncWebClient, f: SlackFile, *, origins: frozenset[tuple[str, str, int]]
) -> ImageSource:
    """The download the service makes: the file's private link with the bot token, only
    when the link is on Slack's file host. Raises RequestRefused (field "image")."""
    if f.url is None or f.needs_info:
        f = await file_info(client, f.id)
    if f.url is None:
        raise _refused("Slack gave no download link for that image; attach it again.")
    if origin_of(f.url) not in origins:
        raise _refused(
            "That image is not on Slack's file host, so the bot will not fetch it with its "
            "token; attach the image to the form instead."
        )
    return ImageSource(url=f.url, headers={"Authorization": f"Bearer {client.token}"})


async def file_info(client: AsyncWebClient, file_id: str) -> SlackFile:
    try:
        answer = await client.files_info(file=file_id)
    except SlackApiError as exc:
        error = slack_error(exc)
        if error in ("file_not_found", "file_deleted"):
            raise _refused("That image was deleted from Slack; attach it again.") from None
        raise _refused(f"Slack would not describe that image ({error}); attach it again.") from None
    data = answer.get("file")
    if not isinstance(data, Mapping):
        raise _refused("Slack would not describe that image; attach it again.")
    return SlackFile.from_payload(data)


def _refused(sentence: str) -> RequestRefused:
    return RequestRefused(sentence, fields={"image": [sentence]})
