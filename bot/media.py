"""Turning the user's prepared image into a URL the provider can fetch.

WaveSpeed models get a WaveSpeed media upload (`download_url`).
Novita needs a public `image_url`: an expiring signed URL served by the bot's own HTTP
endpoint when the operator configures PUBLIC_BASE_URL (the web endpoint), else a WaveSpeed
upload when a WaveSpeed key is set, else the model cannot run (a clear configuration error).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from bot.images import PreparedImage
from bot.links import LinkSigner
from storage import JobStatus, JobStore, StoredImage

# How long after the submit the provider may still fetch the input: Novita fetches when the
# task starts, which a queue can delay; the job deadline (30 min) bounds it anyway.
IMAGE_URL_MARGIN_S = 30 * 60
# A token's own lifetime, however long the job waits for its submit (a re-submit mints anew).
IMAGE_TOKEN_TTL_S = 2 * 3600
_FETCHABLE = frozenset({JobStatus.RESERVED, JobStatus.SUBMITTED, JobStatus.PROCESSING})


class MediaHost(Protocol):
    """Gives the provider a URL for an image we already validated. `slot` is 'image' or
    'last_image': the same names under which the job keeps its inputs (`job_inputs`).
    A host that uses a video provider's API key names it in a `provider` attribute, so a
    refused key stops its jobs too (`bot/keys.py`)."""

    async def host(self, image: PreparedImage, *, job_id: str, slot: str = "image") -> str: ...


class WaveSpeedUploads:
    """WaveSpeed's media upload; the URL lives 7 days, far longer than any render."""

    provider = "wavespeed"

    def __init__(self, client: Any) -> None:
        self.client = client

    async def host(self, image: PreparedImage, *, job_id: str, slot: str = "image") -> str:
        prefix = job_id if slot == "image" else f"{job_id}-{slot}"
        name = f"{prefix}-{image.filename}"
        media = await self.client.upload(image.data, filename=name, content_type=image.content_type)
        return str(media.url)


class SignedImageUrls:
    """The bot's own `/i/<token>` URL for a job's prepared input (Novita needs a public URL).

    The URL names (job, slot) only; the bytes are the ones stored with the job. It works
    while the job is being submitted and for IMAGE_URL_MARGIN_S after, then answers 404.
    """

    def __init__(
        self, links: LinkSigner, jobs: JobStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.links = links
        self.jobs = jobs
        self.clock = clock

    async def host(self, image: PreparedImage, *, job_id: str, slot: str = "image") -> str:
        # The image behind the URL is the job's kept input: the service keeps every job's
        # inputs from the reservation on, and Submitter.stored_inputs keeps a legacy job's
        # (`meta.image_source`) when it loads them, so the URL never points at nothing.
        url = self.links.url("image", job_id, slot, self.clock() + IMAGE_TOKEN_TTL_S)
        if url is None:
            raise RuntimeError("signed image URLs need PUBLIC_BASE_URL")
        return url

    async def fetch(self, token: str) -> StoredImage | None:
        """The image behind a token, or None: forged, expired, or the job is past needing it."""
        claims = self.links.verify("image", token)
        if claims is None:
            return None
        job = await self.jobs.get(claims.job_id)
        if job is None or job.status not in _FETCHABLE:
            return None
        if job.submit_started_at is not None and (
            self.clock() > job.submit_started_at + IMAGE_URL_MARGIN_S
        ):
            return None
        return await self.jobs.get_input(claims.job_id, claims.item)


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
