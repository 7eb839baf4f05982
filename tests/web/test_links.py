"""Signed links: the image a provider fetches (/i/) and the clip a person opens (/c/)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.clips import ClipStore, safe_name
from bot.links import LinkSigner
from bot.media import IMAGE_URL_MARGIN_S
from providers.simulator import Simulator
from storage import JobStatus
from tests.bot.conftest import Clock
from tests.fixtures_db import FakeClock


def test_a_token_verifies_only_untouched_unexpired_and_for_its_purpose() -> None:
    clock = FakeClock()
    signer = LinkSigner("s" * 32, "https://bot.example", clock)
    token = signer.token("clip", "job1", "job1.mp4", clock.now + 60)
    claims = signer.verify("clip", token)
    assert claims is not None and (claims.job_id, claims.item) == ("job1", "job1.mp4")
    assert signer.verify("image", token) is None  # another purpose, another key
    body, _, mac = token.partition(".")
    forged_body = signer.token("clip", "job2", "job1.mp4", clock.now + 60).partition(".")[0]
    assert signer.verify("clip", f"{forged_body}.{mac}") is None  # another job, same MAC
    assert signer.verify("clip", f"{body}.{mac[:-1]}A") is None or mac.endswith("A")
    assert LinkSigner("t" * 32, None, clock).verify("clip", token) is None  # another secret
    clock.advance(60)
    assert signer.verify("clip", token) is None  # expired


def test_clip_file_names_cannot_leave_their_folder() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\x.mp4") == "x.mp4"
    assert safe_name("a b?.mp4") == "a_b_.mp4"
    assert safe_name("...") == "clip.mp4"


async def test_the_input_image_url_serves_the_stored_image_until_submit_plus_margin(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    clock = Clock()
    async with endpoint(runner=False, clock=clock) as ep:
        job = await ep.animate(png_file, model="wan-2.1", resolution="480p")
        url: str = job.meta["image_url"]
        path = url.removeprefix(ep.url)
        stored = await ep.app.db.jobs.get_input(job.id)
        first = await ep.get(path)
        tampered = await ep.get(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
        clock.jump(IMAGE_URL_MARGIN_S + 1)  # submitted more than the margin ago
        late = await ep.get(path)
    assert stored is not None
    assert first.status_code == 200 and first.content == stored.data
    assert first.headers["content-type"] == "image/png"
    assert "no-store" in first.headers["cache-control"]
    assert tampered.status_code == 404
    assert late.status_code == 404


async def test_the_input_image_url_ends_with_the_job(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(runner=False) as ep:
        job = await ep.animate(png_file, model="wan-2.1", resolution="480p")
        path = job.meta["image_url"].removeprefix(ep.url)
        await ep.app.db.jobs.transition(
            job.id, JobStatus.FAILED, expect={JobStatus.SUBMITTED}, ledger="void"
        )
        gone = await ep.get(path)
    assert gone.status_code == 404


async def test_a_kept_clip_is_served_at_its_link_and_purged_after_retention(
    endpoint: Callable[..., Any], tmp_path: Path
) -> None:
    clock = Clock()
    async with endpoint(runner=False, clock=clock, clip_retention_days=2) as ep:
        clips: ClipStore = ep.app.clips
        data = bytes(range(256)) * 64
        link = clips.keep("job123", data, "job123.mp4")
        assert link is not None and link.startswith(f"{ep.url}/c/")
        path = link.removeprefix(ep.url)
        whole = await ep.get(path)
        part = await ep.get(path, headers={"Range": "bytes=0-99"})
        other = clips.keep("job456", b"x" * 10, "../evil.mp4")
        assert other is not None
        assert (tmp_path / "clips" / "job456" / "evil.mp4").exists()
        clock.jump(2 * 86_400 + 1)
        expired = await ep.get(path)
        # the file itself goes with the purge, by its age on disk on the same clock
        old, fresh = clock() - 3 * 86_400, clock()
        os.utime(tmp_path / "clips" / "job123" / "job123.mp4", (old, old))
        os.utime(tmp_path / "clips" / "job456" / "evil.mp4", (fresh, fresh))
        assert clips.purge() == 1
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4"
    assert part.status_code == 206 and part.content == data[:100]
    assert expired.status_code == 404
    assert not (tmp_path / "clips" / "job123").exists()
    assert (tmp_path / "clips" / "job456" / "evil.mp4").exists()


async def test_without_a_public_url_clips_are_kept_but_not_linked(
    endpoint: Callable[..., Any], tmp_path: Path
) -> None:
    async with endpoint(runner=False, public=False) as ep:
        assert ep.app.clips.keep("job1", b"clip", "job1.mp4") is None
        assert ep.app.links is None and ep.app.callbacks is None
    assert (tmp_path / "clips" / "job1" / "job1.mp4").read_bytes() == b"clip"


@pytest.mark.parametrize("path", ["/c/", "/i/", "/", "/clips", "/c/../../etc/passwd"])
async def test_nothing_is_listed(endpoint: Callable[..., Any], path: str) -> None:
    async with endpoint(runner=False) as ep:
        response = await ep.get(path)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("public_base_url", "bot.example.com", "PUBLIC_BASE_URL must be an absolute"),
        ("public_base_url", "https://bot.example.com/?x=1", "PUBLIC_BASE_URL must be"),
        ("url_signing_secret", "short", "URL_SIGNING_SECRET must be at least 16"),
    ],
)
def test_link_settings_are_checked_with_a_sentence_naming_them(
    setting: str, value: str, says: str
) -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None, **{setting: value})  # type: ignore[arg-type]
    assert Settings(_env_file=None, public_base_url="https://bot.example.com/").public_base_url == (
        "https://bot.example.com"
    )
