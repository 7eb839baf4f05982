"""Re-encoding a clip to fit a chat's upload limit, when that keeps it watchable.

The target video bitrate is what the limit leaves over the clip's duration (90 % of it, for
the container and the rate control's error), after the audio track, copied as it is. A frame
size is kept only while it gets at least `MIN_BITS_PER_PIXEL` bits per pixel per frame (below
that H.264 turns to smears); otherwise the clip is scaled down to 720p, 480p or 360p, and
below 360p at that rate it is not worth watching: the caller posts a link instead.
"""

from __future__ import annotations

import io
import logging
from fractions import Fraction

import av
from av.container import InputContainer

log = logging.getLogger(__name__)

MIN_BITS_PER_PIXEL = 0.03
HEIGHTS = (1080, 720, 480, 360)
HEADROOM = 0.90


class _Source:
    def __init__(self, data: bytes) -> None:
        container: InputContainer
        with av.open(io.BytesIO(data), mode="r") as container:
            video = container.streams.video[0]
            self.width = int(video.codec_context.width)
            self.height = int(video.codec_context.height)
            rate = video.average_rate or video.guessed_rate or Fraction(24)
            self.fps = float(rate)
            duration = container.duration  # microseconds
            if duration is None and video.duration is not None and video.time_base:
                duration = int(video.duration * video.time_base * 1_000_000)
            self.seconds = max(0.1, (duration or 0) / 1_000_000)
            self.audio_bytes = 0
            if container.streams.audio:
                self.audio_bytes = sum(int(p.size) for p in container.demux(audio=0))


def plan(data: bytes, limit: int) -> tuple[int, int, int] | None:
    """(width, height, video bits per second) to fit `limit`, or None when not watchable."""
    src = _Source(data)
    budget = (limit * HEADROOM - src.audio_bytes) * 8 / src.seconds
    if budget <= 0:
        return None
    candidates = [src.height] + [h for h in HEIGHTS if h < src.height]
    for height in candidates:
        width = _even(src.width * height / src.height)
        if budget / (width * height * src.fps) >= MIN_BITS_PER_PIXEL:
            return width, _even(height), int(budget)
    return None


def fit_clip(data: bytes, limit: int) -> bytes | None:
    """A copy of the mp4 no larger than `limit` bytes, or None. Blocking: run in a thread."""
    if len(data) <= limit:
        return data
    try:
        target = plan(data, limit)
        if target is None:
            return None
        width, height, bitrate = target
        for attempt in range(2):
            out = _encode(data, width, height, int(bitrate * (0.8**attempt)))
            if len(out) <= limit:
                return out
    except (av.FFmpegError, ValueError, IndexError) as exc:
        log.warning("could not re-encode a clip to fit %d bytes: %s", limit, exc)
    return None


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _encode(data: bytes, width: int, height: int, bitrate: int) -> bytes:
    buf = io.BytesIO()
    src: InputContainer
    with av.open(io.BytesIO(data), mode="r") as src, av.open(buf, mode="w", format="mp4") as dst:
        vin = src.streams.video[0]
        rate = vin.average_rate or vin.guessed_rate or Fraction(24)
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.bit_rate = bitrate
        vout.options = {
            "preset": "veryfast",
            "maxrate": str(int(bitrate * 1.2)),
            "bufsize": str(int(bitrate * 2)),
            "movflags": "+faststart",
        }
        ain = src.streams.audio[0] if src.streams.audio else None
        aout = dst.add_stream_from_template(ain) if ain is not None else None
        streams = [vin] + ([ain] if ain is not None else [])
        for packet in src.demux(*streams):
            if packet.stream is ain and aout is not None:
                if packet.dts is None:
                    continue
                packet.stream = aout
                dst.mux(packet)
                continue
            for frame in packet.decode():
                assert isinstance(frame, av.VideoFrame)
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                scaled.pts, scaled.time_base = frame.pts, frame.time_base
                dst.mux(vout.encode(scaled))
        dst.mux(vout.encode(None))
    return buf.getvalue()
