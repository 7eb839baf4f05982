"""The user's image, made safe and ready for a provider.

A chat user controls both the link and the bytes, and a provider bills for whatever it is
given, so everything is checked here, before any money moves. Decisions:

- **Download** (`fetch_image`): http and https only; no user name or password in the link;
  at most 3 redirects, followed by hand so that every hop is checked. Each host is resolved
  and refused when any of its addresses is private, loopback, link-local, multicast, reserved
  or unspecified (unless `allow_private`, for tests and the simulator; multicast and
  unspecified stay refused). The request then goes to the vetted address itself, with the
  original Host and TLS name, so a DNS answer that changes between check and connect
  (DNS rebinding) cannot reach an internal service. Caller headers (a Slack Bearer token)
  go only to the original origin (scheme, host, port). A `text/html` answer is refused:
  it is Slack's login page, not the file. The body is read with a byte cap and the
  whole download with a deadline. A client we create ignores proxy environment variables.
- **Formats** (sniffed from the bytes, never the name or the Content-Type): JPEG, PNG,
  WEBP, GIF, BMP and TIFF. Only these Pillow decoders are ever tried (no EPS or other exotic
  decoders on untrusted input). Animated GIF/WEBP/APNG and multi-page TIFF: the first frame.
  Anything else gets a sentence naming what it is (a PDF, a HEIC photo, a video ...).
- **Limits** (`ImageLimits`): at most 10 MB; each side 128..8192 pixels (below 128 a 480p
  clip is mush); at most 50 megapixels (a 48 MP phone photo passes; decompression bombs do
  not: sizes are checked from the header before any pixel is decoded); at most 4:1 either
  way (video frames are 16:9 at most; a long strip would be letterboxed into nothing).
- **Output** (`prepare_image`): JPEG and PNG pass through byte for byte when they are
  upright, within `max_output_side`, opaque and carry nothing but pixels and color data
  (no EXIF, GPS, XMP, comments, text chunks, trailing bytes). Otherwise the first frame is
  rotated by its EXIF orientation, alpha is flattened onto white (video models ignore alpha
  and the hidden colors under it may be garbage), it is downscaled to `max_output_side`
  and re-encoded without metadata: JPEG sources as JPEG, others as PNG (providers say
  "avoid WEBP"), or as JPEG when the PNG would exceed `max_bytes`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path

import httpx

from bot.images.download import MAX_REDIRECTS, address_allowed, fetch_image
from bot.images.limits import (
    ACCEPTED_FORMATS,
    ImageDownloadFailed,
    ImageLimits,
    ImageRejected,
    PreparedImage,
    too_big,
)
from bot.images.prepare import prepare_image

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_REDIRECTS",
    "ImageDownloadFailed",
    "ImageLimits",
    "ImageRejected",
    "PreparedImage",
    "address_allowed",
    "fetch_image",
    "load_image",
    "prepare_image",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                raise ImageRejected(too_big(path.stat().st_size, limits))
            return data
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ImageRejected(f"There is no image file at {path}.") from None
    except PermissionError:
        raise ImageRejected(f"The image file {path} cannot be read (permission denied).") from None


async def load_image(
    source: str | Path | bytes,
    *,
    limits: ImageLimits,
    headers: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> PreparedImage:
    """Bytes, a local path (the CLI), or a link (anything with a scheme) -> PreparedImage.

    A string with a scheme is always treated as a link, so `file:` and other schemes are
    refused rather than read; chat adapters pass attachment links, never paths.
    """
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str) and _SCHEME.match(source):
        data = await fetch_image(source, limits=limits, headers=headers, http=http)
    else:
        data = await asyncio.to_thread(_read_file, Path(source), limits)
    return await asyncio.to_thread(prepare_image, data, limits=limits)
