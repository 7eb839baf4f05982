"""The simulator's clip: a real H.264 mp4 that browsers and Discord can play."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image

from providers.simulator.clip import _boxes, make_clip, static_clip

SAMPLE = (Path(__file__).resolve().parents[2] / "bot" / "assets" / "sample.png").read_bytes()


def probe(data: bytes) -> tuple[str, str, int, int, int]:
    """(codec, pixel format, width, height, decoded frame count)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = sum(1 for _ in container.decode(stream))
    return codec, str(pix_fmt), width, height, frames


@pytest.mark.parametrize(("seconds", "fps"), [(2.0, 12), (1.5, 10), (0.25, 8)])
def test_make_clip_is_h264_with_enough_frames(seconds: float, fps: int) -> None:
    data = make_clip(SAMPLE, seconds=seconds, fps=fps)
    codec, pix_fmt, width, height, frames = probe(data)
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert abs(frames - fps * seconds) <= 1 and frames >= fps * seconds - 1
    assert (width, height) == (480, 320)  # 768x512 scaled to max_side, aspect kept


def test_make_clip_has_even_dimensions_within_max_side() -> None:
    odd = Image.new("RGB", (301, 199), (200, 120, 40))
    buf = io.BytesIO()
    odd.save(buf, "JPEG")
    _, _, width, height, _ = probe(make_clip(buf.getvalue(), seconds=1, max_side=101))
    assert width % 2 == 0 and height % 2 == 0
    assert max(width, height) <= 101 and (width, height) == (100, 66)


def test_small_images_are_not_upscaled() -> None:
    img = Image.new("RGB", (160, 90), "teal")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    _, _, width, height, _ = probe(make_clip(buf.getvalue(), seconds=1))
    assert (width, height) == (160, 90)


def test_the_camera_moves() -> None:
    with av.open(io.BytesIO(make_clip(SAMPLE, seconds=1, fps=6))) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    assert frames[0].tobytes() != frames[-1].tobytes()


def test_index_comes_before_media_for_streaming_playback() -> None:
    data = make_clip(SAMPLE, seconds=1)
    kinds = [kind for kind, _, _ in _boxes(data, 0, len(data))]
    assert kinds.index(b"moov") < kinds.index(b"mdat")


def test_static_clip_is_cached_and_playable() -> None:
    first = static_clip()
    assert static_clip() is first
    codec, pix_fmt, width, height, frames = probe(first)
    assert (codec, pix_fmt, width % 2, height % 2) == ("h264", "yuv420p", 0, 0)
    assert frames == 12
    assert len(first) < 20_000


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"seconds": 0}, "seconds"),
        ({"seconds": 61}, "seconds"),
        ({"seconds": 1, "fps": 0}, "fps"),
        ({"seconds": 1, "max_side": 8}, "max_side"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make_clip(SAMPLE, **kwargs)  # type: ignore[arg-type]


def test_undecodable_bytes() -> None:
    with pytest.raises(ValueError, match="cannot decode the image"):
        make_clip(b"%PDF-1.7 not an image", seconds=1)
