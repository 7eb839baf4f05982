"""Sniffing, decoding and re-encoding: from untrusted bytes to what a provider gets."""

from __future__ import annotations

import io
import logging
import warnings

from PIL import Image, UnidentifiedImageError

from bot.images.limits import (
    ACCEPTED_FORMATS,
    ASK,
    ImageLimits,
    ImageRejected,
    PreparedImage,
    too_big,
)

log = logging.getLogger(__name__)

_WHITE = (255, 255, 255)


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
        return ImageRejected(f"That file is {what}, not an image we can use: {ASK}.")
    return ImageRejected(
        f"That file is not an image we can read: {ASK} (GIF, BMP and TIFF also work)."
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
        raise ImageRejected(f"The file is empty; {ASK}.")
    if len(data) > limits.max_bytes:
        raise ImageRejected(too_big(len(data), limits))
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
