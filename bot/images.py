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
import contextlib
import io
import ipaddress
import logging
import re
import socket
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image, UnidentifiedImageError

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

log = logging.getLogger(__name__)

# Pillow's JPEG decoder also opens the multi-picture JPEGs many phones write, as format "MPO".
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_REDIRECTS = 3
_ASK = "send a PNG, JPEG or WEBP image"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageLimits:
    """What we accept from a user; every refusal message quotes these numbers."""

    max_bytes: int = 10 * 1024 * 1024
    min_side: int = 128
    max_side: int = 8192
    max_pixels: int = 50_000_000
    max_aspect: float = 4.0
    max_output_side: int = 2048
    timeout_s: float = 20.0
    allow_private: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_side <= self.max_side or self.max_output_side < self.min_side:
            raise ValueError("need 0 < min_side <= max_side and max_output_side >= min_side")
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.timeout_s <= 0:
            raise ValueError("max_bytes, max_pixels and timeout_s must be positive")
        if self.max_aspect < 1:
            raise ValueError("max_aspect must be at least 1")


@dataclass(frozen=True)
class PreparedImage:
    """The bytes we hand to a provider, and what they are."""

    data: bytes
    content_type: str
    filename: str
    width: int
    height: int
    source_format: str
    converted: bool


class ImageRejected(ValueError):
    """The image cannot be used; `str(exc)` tells the user what was wrong and what is allowed."""


class ImageDownloadFailed(ImageRejected):
    """The image could not be downloaded (network, timeout, HTTP error); trying again may work."""


# --------------------------------------------------------------------------- messages


def _size(size: int) -> str:
    """12.4 MB, 10 MB, 950 KB: binary units, as chat apps show file sizes."""
    if size >= 1_048_576:
        return f"{size / 1_048_576:.1f}".removesuffix(".0") + " MB"
    return f"{max(1, round(size / 1024))} KB"


def _too_big(size: int, limits: ImageLimits) -> str:
    return f"The image is {_size(size)}; the limit is {_size(limits.max_bytes)}."


# --------------------------------------------------------------------------- download


def address_allowed(address: str, *, allow_private: bool = False) -> bool:
    """May we connect to this IP address on a user's behalf?

    IPv6 forms that embed an IPv4 address (mapped, 6to4, Teredo, NAT64) are judged by the
    embedded address, so ::ffff:127.0.0.1 is loopback.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(str(embedded), allow_private=allow_private)
    if ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private:
        return True
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
    )


def _parse_url(raw: str, *, redirected: bool) -> httpx.URL:
    where = "The image link redirected to" if redirected else "The image link is"
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ImageRejected(f"{where} not a valid web address; {_ASK}.") from None
    if url.scheme not in ("http", "https"):
        scheme = f"a {url.scheme}: link" if url.scheme else "a link without http(s)"
        raise ImageRejected(f"{where} {scheme}; only http and https links are accepted.")
    if not url.host:
        raise ImageRejected(f"{where} a web address without a host; {_ASK}.")
    if url.userinfo:
        raise ImageRejected(f"{where} a web address with a user name or password; {_ASK}.")
    return url


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.raw_host.decode("ascii").lower().rstrip("."), url.port


async def _resolve(url: httpx.URL, limits: ImageLimits) -> list[str]:
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ImageDownloadFailed(f"The image host {host} could not be found.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses or not all(
        address_allowed(a, allow_private=limits.allow_private) for a in addresses
    ):
        raise ImageRejected(
            f"The image link points to a private or reserved network address ({host}); "
            "only public web addresses are allowed."
        )
    return addresses


@contextlib.asynccontextmanager
async def _get(
    http: httpx.AsyncClient, url: httpx.URL, headers: Mapping[str, str], limits: ImageLimits
) -> AsyncIterator[httpx.Response]:
    """GET pinned to a vetted address: the check and the connection see the same IP."""
    host = url.raw_host.decode("ascii")
    last_error: Exception | None = None
    for address in await _resolve(url, limits):
        request = http.build_request(
            "GET",
            url.copy_with(host=address),
            headers={
                **headers,
                "Host": url.netloc.decode("ascii"),
                "Accept": "image/*",
                # A pooled connection pinned to one host's IP must not serve another host.
                "Connection": "close",
            },
            extensions={"sni_hostname": host} if url.scheme == "https" else {},
            timeout=limits.timeout_s,
        )
        try:
            response = await http.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            last_error = exc
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return
    raise ImageDownloadFailed(f"Could not connect to the image host {host}; try again.") from (
        last_error
    )


def _check_status(response: httpx.Response, host: str) -> None:
    code = response.status_code
    if code == 200:
        return
    if code in (401, 403):
        raise ImageDownloadFailed(
            f"The image host {host} refused access (HTTP {code}); send the image itself."
        )
    if code in (404, 410):
        raise ImageDownloadFailed(
            f"The image link no longer works (HTTP {code}); upload the image again."
        )
    raise ImageDownloadFailed(f"The image host {host} answered HTTP {code} instead of the image.")


async def _read_capped(response: httpx.Response, limits: ImageLimits) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_bytes:
        raise ImageRejected(_too_big(int(length), limits))
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > limits.max_bytes:
            raise ImageRejected(f"The image is larger than {_size(limits.max_bytes)}, the limit.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch(
    url: str, limits: ImageLimits, headers: Mapping[str, str], http: httpx.AsyncClient
) -> bytes:
    origin = _parse_url(url, redirected=False)
    current = origin
    for _hop in range(MAX_REDIRECTS + 1):
        same_origin = _origin(current) == _origin(origin)
        host = current.raw_host.decode("ascii")
        try:
            async with _get(http, current, headers if same_origin else {}, limits) as response:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise ImageDownloadFailed(
                            f"The image host {host} sent a redirect without a target."
                        )
                    current = _parse_url(str(current.join(location)), redirected=True)
                    continue
                _check_status(response, host)
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                if media_type.lower() == "text/html":
                    raise ImageRejected(
                        "The image link returned a web page, not an image (a login page or an "
                        f"expired link); {_ASK}."
                    )
                return await _read_capped(response, limits)
        except httpx.TimeoutException:
            raise  # handled with the overall deadline in fetch_image
        except httpx.HTTPError as exc:
            raise ImageDownloadFailed(
                f"The download from {host} failed ({type(exc).__name__}); try again."
            ) from exc
    raise ImageRejected(
        f"The image link redirected more than {MAX_REDIRECTS} times; send the image itself."
    )


async def fetch_image(
    url: str,
    *,
    limits: ImageLimits,
    headers: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> bytes:
    """Download a user's image link safely (see the module docstring); raises ImageRejected."""
    if http is None:
        async with httpx.AsyncClient(trust_env=False, timeout=limits.timeout_s) as client:
            return await fetch_image(url, limits=limits, headers=headers, http=client)
    try:
        async with asyncio.timeout(limits.timeout_s):
            return await _fetch(url, limits, headers or {}, http)
    except (TimeoutError, httpx.TimeoutException):
        raise ImageDownloadFailed(
            f"The image download did not finish within {limits.timeout_s:g} seconds; try again."
        ) from None


# --------------------------------------------------------------------------- sniffing


_ACCEPTED_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_OTHER_MAGIC = (
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x1aE\xdf\xa3", "a video (WebM or MKV)"),
    (b"OggS", "an Ogg audio or video file"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x01\x00", "an icon (ICO)"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a program"),
)
_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def _accepted_magic(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _ACCEPTED_MAGIC if data.startswith(magic)), None)


def _describe(data: bytes) -> str | None:
    """Name a non-image file so the refusal says what the user actually sent."""
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _HEIC_BRANDS:
            return "a HEIC photo"
        if brand in (b"avif", b"avis"):
            return "an AVIF image"
        return "a video"
    if data[:4] == b"RIFF":
        return {b"AVI ": "a video (AVI)", b"WAVE": "an audio file (WAV)"}.get(data[8:12])
    for magic, name in _OTHER_MAGIC:
        if data.startswith(magic):
            return name
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "a web page (HTML)"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096]):
        return "an SVG drawing"
    return None


def _unreadable(data: bytes) -> ImageRejected:
    kind = _accepted_magic(data)
    if kind is not None:
        return ImageRejected(
            f"The {kind} file is damaged or incomplete and could not be decoded; "
            "save or upload it again."
        )
    what = _describe(data)
    if what == "a HEIC photo":
        return ImageRejected(
            "That file is a HEIC photo, which we cannot read: send a PNG, JPEG or WEBP image "
            "(an iPhone can share photos as JPEG)."
        )
    if what is not None:
        return ImageRejected(f"That file is {what}, not an image we can use: {_ASK}.")
    return ImageRejected(
        f"That file is not an image we can read: {_ASK} (GIF, BMP and TIFF also work)."
    )


# --------------------------------------------------------------------------- preparing


# PNG chunks that hold only pixels and color data; anything else (text, EXIF, APNG
# frames, private chunks) means the file is re-encoded.
_PLAIN_PNG_CHUNKS = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"pHYs", b"sBIT"}
)
_PLAIN_JPEG_SEGMENTS = (("APP0", b"JFIF"), ("APP2", b"ICC_PROFILE"), ("APP14", b"Adobe"))


def _plain_png(data: bytes) -> bool:
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind not in _PLAIN_PNG_CHUNKS:
            return False
        pos += 12 + length
        if kind == b"IEND":
            return pos == len(data)
    return False


def _plain_jpeg(img: Image.Image, data: bytes) -> bool:
    segments = getattr(img, "applist", [])
    return data.rstrip(b"\x00").endswith(b"\xff\xd9") and all(
        any(marker == m and body.startswith(p) for m, p in _PLAIN_JPEG_SEGMENTS)
        for marker, body in segments
    )


def _passes_through(img: Image.Image, data: bytes, limits: ImageLimits) -> bool:
    # The format test comes first: counting a GIF's frames would decode all of them.
    if img.format not in ("JPEG", "PNG") or max(img.size) > limits.max_output_side:
        return False
    if getattr(img, "n_frames", 1) != 1:
        return False
    if img.format == "JPEG":
        return img.mode in ("RGB", "L") and _plain_jpeg(img, data)
    if img.format == "PNG":
        opaque = img.mode in ("RGB", "L", "P") and "transparency" not in img.info
        return opaque and _plain_png(data)
    return False


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    size = f"{width}x{height} pixels"
    if max(width, height) > limits.max_side:
        raise ImageRejected(
            f"The image is {size}; each side may be at most {limits.max_side} pixels."
        )
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"The image has {width * height / 1e6:.1f} megapixels; "
            f"the limit is {limits.max_pixels / 1e6:g} megapixels."
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            f"The image is {size}; each side must be at least {limits.min_side} pixels."
        )
    ratio = max(width, height) / min(width, height)
    if ratio > limits.max_aspect:
        shape = "wide" if width > height else "tall"
        raise ImageRejected(
            f"The image is {ratio:.1f} times as {shape} as it is "
            f"{'tall' if shape == 'wide' else 'wide'}; at most {limits.max_aspect:g} to 1 "
            "is allowed."
        )


def _flatten(img: Image.Image) -> Image.Image:
    """RGB, alpha composited onto white, 16-bit gray scaled rather than clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img if img.mode == "RGB" else img.convert("RGB")


_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright_rgb(img: Image.Image, limits: ImageLimits) -> Image.Image:
    """Flatten, then shrink, then turn: the big copies are made as few times as possible."""
    # Read after load(): Pillow's TIFF decoder turns the pixels itself and drops the tag.
    orientation = img.getexif().get(0x0112, 1)
    out = _flatten(img)
    if max(out.size) > limits.max_output_side:
        scale = limits.max_output_side / max(out.size)
        size = (max(1, round(out.width * scale)), max(1, round(out.height * scale)))
        out = out.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if orientation in _ORIENTATION:
        out = out.transpose(_ORIENTATION[orientation])
    out.info = {}  # Pillow's encoders copy some metadata (comments) from here
    return out


def _encode(img: Image.Image, *, as_jpeg: bool, icc: bytes | None, limits: ImageLimits) -> bytes:
    extra = {"icc_profile": icc} if icc else {}
    if not as_jpeg:
        buf = io.BytesIO()
        img.save(buf, "PNG", **extra)
        if buf.tell() <= limits.max_bytes:
            return buf.getvalue()
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, **extra)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    """Open (header only) with the accepted decoders; Pillow's bomb guard becomes a refusal.

    catch_warnings is process-wide, so a thread racing it may see the warning as a warning;
    harmless, because our own pixel limit (checked next) is below Pillow's.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)


def prepare_image(data: bytes, *, limits: ImageLimits) -> PreparedImage:
    """Check and convert a user's image (pure CPU work: run it in a thread from async code)."""
    if not data:
        raise ImageRejected(f"The file is empty; {_ASK}.")
    if len(data) > limits.max_bytes:
        raise ImageRejected(_too_big(len(data), limits))
    try:
        img = _open(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            f"The image's dimensions are too large: each side may be at most {limits.max_side} "
            f"pixels and the whole at most {limits.max_pixels / 1e6:g} megapixels."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        log.info("image refused at open: %s", exc)
        raise _unreadable(data) from None
    with img:
        source_format = "JPEG" if img.format == "MPO" else str(img.format)
        _check_dimensions(img.width, img.height, limits)
        passthrough = _passes_through(img, data, limits)
        scale = limits.max_output_side / max(img.size)
        if img.format in ("JPEG", "MPO") and scale < 1:
            # Let libjpeg decode at a reduced size: a 48 MP photo costs a fraction of the work.
            img.draft("RGB", (int(img.width * scale) + 1, int(img.height * scale) + 1))
        try:
            img.seek(0)
            img.load()
            if passthrough:
                return PreparedImage(
                    data=data,
                    content_type=f"image/{source_format.lower()}",
                    filename=f"input.{'jpg' if source_format == 'JPEG' else 'png'}",
                    width=img.width,
                    height=img.height,
                    source_format=source_format,
                    converted=False,
                )
            icc = img.info.get("icc_profile") if img.mode in ("RGB", "RGBA") else None
            out = _upright_rgb(img, limits)
        except Exception as exc:  # any decoder failure on hostile bytes is a refusal
            log.info("image refused while decoding: %s: %s", type(exc).__name__, exc)
            raise _unreadable(data) from None
    as_jpeg = source_format == "JPEG"
    encoded = _encode(out, as_jpeg=as_jpeg, icc=icc, limits=limits)
    is_jpeg = encoded.startswith(b"\xff\xd8")
    return PreparedImage(
        data=encoded,
        content_type="image/jpeg" if is_jpeg else "image/png",
        filename="input.jpg" if is_jpeg else "input.png",
        width=out.width,
        height=out.height,
        source_format=source_format,
        converted=True,
    )


# --------------------------------------------------------------------------- entry point

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                raise ImageRejected(_too_big(path.stat().st_size, limits))
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
