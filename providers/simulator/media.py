"""Bytes the simulator holds: uploaded media, fetched input images and generated clips."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import mimetypes
import secrets
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from providers.simulator import clip

UPLOAD_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
     ".mp4", ".mov", ".webm", ".mkv", ".mp3", ".wav", ".m4a", ".ogg"}
)


class MediaUnreachable(Exception):
    """The provider could not fetch an input URL (WaveSpeed code 1402)."""


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes | None = None  # None until the ticket's PUT arrives


class MediaStore:
    def __init__(self, http: httpx.AsyncClient, *, max_clip_cache: int = 32) -> None:
        self._http = http
        self.uploads: dict[str, Upload] = {}
        self.base_url = ""
        self._clips: OrderedDict[tuple[str, float], asyncio.Future[bytes]] = OrderedDict()
        self._max_clips = max_clip_cache
        self._static: asyncio.Future[bytes] | None = None
        self._fetch_slots = asyncio.Semaphore(32)

    # --- uploads ------------------------------------------------------------------------
    def new_upload(self, filename: str, content_type: str = "", data: bytes | None = None) -> str:
        token = secrets.token_hex(16)
        guessed = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self.uploads[token] = Upload(filename, content_type or guessed, data)
        return token

    def download_url(self, token: str) -> str:
        return f"{self.base_url}/_sim/media/{token}/{self.uploads[token].filename}"

    def upload_put_url(self, token: str) -> str:
        return f"{self.base_url}/_sim/uploads/{token}"

    @staticmethod
    def allowed_type(filename: str) -> bool:
        dot = filename.rfind(".")
        return dot >= 0 and filename[dot:].lower() in UPLOAD_EXTENSIONS

    # --- input images -------------------------------------------------------------------
    async def fetch(self, url: str, *, timeout_s: float, max_bytes: int) -> bytes:
        """The bytes behind an input URL, as the provider would fetch them."""
        if url.startswith("data:"):
            try:
                return base64.b64decode(url.partition(",")[2], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MediaUnreachable("media URL not reachable: malformed data URI") from exc
        local = f"{self.base_url}/_sim/media/"
        if self.base_url and url.startswith(local):  # our own upload: skip the HTTP round trip
            token = url[len(local):].split("/", 1)[0]
            upload = self.uploads.get(token)
            if upload is None or upload.data is None:
                raise MediaUnreachable("media URL not reachable: HTTP 404")
            return upload.data
        if not url.startswith(("http://", "https://")):
            raise MediaUnreachable("media URL not reachable: not an http(s) URL")
        try:
            async with self._fetch_slots, self._http.stream(
                "GET", url, timeout=timeout_s, follow_redirects=True
            ) as resp:
                if resp.status_code != 200:
                    raise MediaUnreachable(f"media URL not reachable: HTTP {resp.status_code}")
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaUnreachable("media URL not reachable: file too large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise MediaUnreachable(f"media URL not reachable: {type(exc).__name__}") from exc

    @staticmethod
    def check_image(data: bytes) -> str:
        """'' when Pillow can decode the bytes as an image, else why not."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            return f"image could not be decoded ({type(exc).__name__})"
        return ""

    # --- clips --------------------------------------------------------------------------
    async def clip_for(self, image: bytes | None, seconds: float, mode: str) -> bytes:
        """The task's mp4: encoded off the event loop, once per (image, seconds)."""
        if mode == "static" or image is None:
            if self._static is None:
                self._static = asyncio.ensure_future(asyncio.to_thread(clip.static_clip))
            return await asyncio.shield(self._static)
        key = (hashlib.sha256(image).hexdigest(), seconds)
        fut = self._clips.get(key)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = asyncio.ensure_future(asyncio.to_thread(clip.make_clip, image, seconds=seconds))
            self._clips[key] = fut
            while len(self._clips) > self._max_clips:
                self._clips.popitem(last=False)
        else:
            self._clips.move_to_end(key)
        return await asyncio.shield(fut)

    def reset(self) -> None:
        self.uploads.clear()
