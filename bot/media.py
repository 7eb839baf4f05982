"""Turning the user's prepared image into a URL the provider can fetch.

PROVIDERS.md Part 1: WaveSpeed models get a WaveSpeed media upload (`download_url`).
Novita needs a public `image_url`: an expiring signed URL served by the bot's own HTTP
endpoint when the operator configures PUBLIC_BASE_URL (the web endpoint), else a WaveSpeed
upload when a WaveSpeed key is set, else the model cannot run (a clear configuration error).
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.images import PreparedImage


class MediaHost(Protocol):
    """Gives the provider a URL for an image we already validated. `slot` is 'image' or
    'last_image': the same names under which the job keeps its inputs (`job_inputs`)."""

    async def host(self, image: PreparedImage, *, job_id: str, slot: str = "image") -> str: ...


class WaveSpeedUploads:
    """WaveSpeed's media upload; the URL lives 7 days, far longer than any render."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def host(self, image: PreparedImage, *, job_id: str, slot: str = "image") -> str:
        prefix = job_id if slot == "image" else f"{job_id}-{slot}"
        name = f"{prefix}-{image.filename}"
        media = await self.client.upload(image.data, filename=name, content_type=image.content_type)
        return str(media.url)


def choose_media_host(
    provider: str, *, wavespeed_uploads: MediaHost | None, signed_urls: MediaHost | None
) -> MediaHost | None:
    """The host for a provider's input image, or None when none is configured."""
    if provider == "novita" and signed_urls is not None:
        return signed_urls
    return wavespeed_uploads


NO_MEDIA_HOST = (
    "wan-2.1 (Novita) needs a public URL for the input image: set PUBLIC_BASE_URL for the "
    "bot's web endpoint, or set WAVESPEED_API_KEY so images can go through WaveSpeed's "
    "media upload."
)
