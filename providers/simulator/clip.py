"""The simulator's output video: a real, playable H.264 mp4 made from the input image.

A fake provider that returned a few random bytes would let bugs through (a Discord upload of a
broken file, a size check on the wrong number), so the simulator renders the user's image with a
slow Ken Burns zoom and pan. It must stay cheap because it runs inside test servers: small frames,
libx264 `ultrafast`, everything in memory. No file and no network is ever read.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from fractions import Fraction

import av
from PIL import Image, ImageOps

__all__ = ["make_clip", "static_clip"]

MAX_SECONDS = 60.0
# Input images larger than this many pixels are refused rather than decoded (decompression bombs).
_MAX_INPUT_PIXELS = 64_000_000
# The camera ends on a crop this fraction of the frame: a gentle push-in, not a dive.
_END_ZOOM = 0.80


def _even(value: float) -> int:
    """H.264 with yuv420p needs even dimensions; never below 2."""
    return max(2, int(value) // 2 * 2)


def _output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def _open_rgb(image_bytes: bytes) -> Image.Image:
    """Decode to RGB with EXIF orientation applied; ValueError for anything undecodable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image_bytes)) as opened:
                if opened.width * opened.height > _MAX_INPUT_PIXELS:
                    raise ValueError(
                        f"image of {opened.width}x{opened.height} is too large to animate"
                    )
                opened.seek(0)
                img = ImageOps.exif_transpose(opened)
                if img.mode in ("RGBA", "LA", "PA") or (
                    img.mode == "P" and "transparency" in img.info
                ):
                    rgba = img.convert("RGBA")
                    flat = Image.new("RGB", rgba.size, (255, 255, 255))
                    flat.paste(rgba, mask=rgba.getchannel("A"))
                    return flat
                return img.convert("RGB")
    except (
        OSError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ValueError(f"cannot decode the image: {exc}") from exc


def _ease(t: float) -> float:
    """Smooth start and stop, so the motion looks like a camera, not a slide."""
    return 0.5 - 0.5 * math.cos(math.pi * t)


def _frames(src: Image.Image, size: tuple[int, int], count: int) -> list[Image.Image]:
    out_w, out_h = size
    # Work from a copy just large enough for the tightest crop: keeps resizing cheap.
    work_scale = min(1.0, max(out_w / (src.width * _END_ZOOM), out_h / (src.height * _END_ZOOM)))
    work = src
    if work_scale < 1.0:
        work = src.resize(
            (max(1, round(src.width * work_scale)), max(1, round(src.height * work_scale))),
            Image.Resampling.BILINEAR,
        )
    w, h = work.size
    # Pan from the upper left toward the lower right third while zooming in.
    end_w, end_h = w * _END_ZOOM, h * _END_ZOOM
    end_x, end_y = (w - end_w) * 0.65, (h - end_h) * 0.55
    frames = []
    for i in range(count):
        t = _ease(i / (count - 1)) if count > 1 else 0.0
        cw, ch = w + (end_w - w) * t, h + (end_h - h) * t
        x, y = end_x * t, end_y * t
        frames.append(work.resize(size, Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch)))
    return frames


def _encode(frames: list[Image.Image], fps: int) -> bytes:
    width, height = frames[0].size
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "26", "tune": "stillimage"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return _faststart(buf.getvalue())


# Boxes on the path from moov to the chunk offset tables; nothing else needs rewriting.
_PARENT_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each box in data[start:end] (32-bit sizes: our files are small)."""
    found = []
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size < 8 or pos + size > end:
            raise ValueError("malformed mp4 box")
        found.append((data[pos + 4 : pos + 8], pos, size))
        pos += size
    return found


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, delta: int) -> None:
    for kind, pos, size in _boxes(bytes(moov), start, end):
        if kind in _PARENT_BOXES:
            _shift_chunk_offsets(moov, pos + 8, pos + size, delta)
        elif kind in (b"stco", b"co64"):
            width = 4 if kind == b"stco" else 8
            count = int.from_bytes(moov[pos + 12 : pos + 16], "big")
            for i in range(count):
                at = pos + 16 + i * width
                value = int.from_bytes(moov[at : at + width], "big") + delta
                moov[at : at + width] = value.to_bytes(width, "big")


def _faststart(data: bytes) -> bytes:
    """Move the index (moov) before the media (mdat), like ffmpeg's +faststart.

    ffmpeg's own faststart re-opens the output file by name, which an in-memory output cannot do.
    With the index first, browsers and Discord start playing before the whole file arrives.
    """
    try:
        top = _boxes(data, 0, len(data))
    except ValueError:  # a layout we do not know (64-bit sizes): leave the file as ffmpeg wrote it
        return data
    kinds = [kind for kind, _, _ in top]
    if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") < kinds.index(b"mdat"):
        return data
    _, moov_pos, moov_size = top[kinds.index(b"moov")]
    mdat_pos = top[kinds.index(b"mdat")][1]
    moov = bytearray(data[moov_pos : moov_pos + moov_size])
    _shift_chunk_offsets(moov, 8, moov_size, moov_size)
    rest = data[mdat_pos:moov_pos] + data[moov_pos + moov_size :]
    return data[:mdat_pos] + bytes(moov) + rest


def make_clip(image_bytes: bytes, *, seconds: float, fps: int = 12, max_side: int = 480) -> bytes:
    """An mp4 (H.264, yuv420p, even dimensions, longest side <= max_side) of a Ken Burns move.

    Raises ValueError for bad arguments or bytes that are not a decodable image.
    """
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be above 0 and at most {MAX_SECONDS:g}, not {seconds}")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps must be between 1 and 60, not {fps}")
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16, not {max_side}")
    src = _open_rgb(image_bytes)
    size = _output_size(src.width, src.height, max_side)
    count = max(1, math.ceil(seconds * fps - 1e-9))
    return _encode(_frames(src, size, count), fps)


@functools.cache
def static_clip() -> bytes:
    """A tiny ready-made clip (1 s of a drifting sunset gradient) for when no image is at hand."""
    width, height, fps = 160, 96, 12
    gradient = Image.linear_gradient("L").resize((width, height * 2))
    frames = []
    for i in range(fps):
        band = gradient.crop((0, i * 4, width, i * 4 + height))
        frames.append(
            Image.merge(
                "RGB",
                (
                    band.point(lambda v: 255 - v // 3),
                    band.point(lambda v: 90 + v // 2),
                    band.point(lambda v: 60 + v * 3 // 4),
                ),
            )
        )
    return _encode(frames, fps)
