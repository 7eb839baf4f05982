"""Chat input parsing, choices, autocomplete, escaping, and re-encoding to fit a limit."""

from __future__ import annotations

import io
import random
from fractions import Fraction

import av
import pytest
from PIL import Image

from bot.chat.fit import fit_clip, plan
from bot.chat.markup import DISCORD, SLACK
from bot.chat.options import lora_suggestions, parse_loras
from bot.errors import RequestRefused
from storage import SavedLora


def test_loras_as_people_type_them() -> None:
    assert parse_loras("omninft:0.5, better_motion=0.3,hardcut") == [
        {"path": "omninft", "scale": 0.5},
        {"path": "better_motion", "scale": 0.3},
        {"path": "hardcut", "scale": None},
    ]
    assert parse_loras("https://h.example/a.safetensors:0.8, https://h.example/b") == [
        {"path": "https://h.example/a.safetensors", "scale": 0.8},
        {"path": "https://h.example/b", "scale": None},
    ]
    with pytest.raises(RequestRefused, match="strength 'lots' is not a number") as bad:
        parse_loras("omninft:lots")
    assert "loras" in bad.value.fields


def test_lora_autocomplete_completes_the_last_entry() -> None:
    keys = lora_suggestions("openvideo-lora", "omninft:0.5, bet", [])
    assert keys[0].value == "omninft:0.5, better_motion:1"
    assert all(c.value.startswith("omninft:0.5, ") for c in keys)
    saved = [SavedLora("g", "wobble", "https://x/w", 0.7, "m")]
    names = lora_suggestions("wan-2.2-fast", "wob", saved)
    assert [(c.name, c.value) for c in names] == [("wobble (saved, 0.7)", "wobble")]
    assert len(lora_suggestions("openvideo-lora", "", [])) == 13


def test_user_text_cannot_mention_or_format() -> None:
    assert DISCORD.escape("@everyone *now*") == "@\u200beveryone \\*now\\*"
    assert SLACK.escape("<!channel> & co") == "&lt;!channel&gt; &amp; co"
    assert DISCORD.mention("discord:123") == "<@123>" == SLACK.mention("123")


def _busy_clip(seconds: int = 2, fps: int = 12, w: int = 640, h: int = 360) -> bytes:
    """A clip that compresses badly (noise), so that re-encoding has work to do."""
    rnd = random.Random(7)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "6"}
        for i in range(seconds * fps):
            img = Image.effect_noise((w, h), 40 + rnd.randint(0, 20)).convert("RGB")
            frame = av.VideoFrame.from_image(img)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return buf.getvalue()


def test_a_clip_is_re_encoded_under_the_limit_and_stays_a_playable_video() -> None:
    clip = _busy_clip()
    limit = len(clip) // 6
    out = fit_clip(clip, limit)
    assert out is not None and len(out) <= limit
    with av.open(io.BytesIO(out)) as c:
        video = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video))
    assert frames == 24


def test_a_limit_too_small_to_watch_gives_up() -> None:
    clip = _busy_clip(seconds=1)
    assert plan(clip, 2_000) is None
    assert fit_clip(clip, 2_000) is None
    assert fit_clip(clip, len(clip)) is clip
