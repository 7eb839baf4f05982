"""The chat sink through the real runner: one status message, the clip posted once, the
size, upload-refused, NSFW and deleted-job rules."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bot.app import App
from bot.chat.delivery import ChatSink
from bot.cli.jobs import follow
from bot.models import AnimateRequest, ImageSource
from bot.sinks import Clip
from providers.simulator import Outcome, Simulator
from storage import JobStatus
from tests.chat.conftest import RecordingPoster


def chat_request(png: Path, **changes: Any) -> AnimateRequest:
    base: dict[str, Any] = {
        "platform": "discord",
        "event_id": uuid.uuid4().hex,
        "user_id": "111",
        "server_id": "g1",
        "channel_id": "c1",
        "thread_id": "t1",
        "image": ImageSource(path=str(png)),
        "prompt": "the lamp flickers",
        "model": "openvideo",
        "options": {"duration": 5, "resolution": "720p"},
        "sink": {"kind": "test-chat"},
    }
    base.update(changes)
    return AnimateRequest(**base)


async def test_one_status_message_is_edited_until_the_clip_is_posted_once(
    chat_app: App, poster: RecordingPoster, png_file: Path
) -> None:
    sub = await chat_app.service.animate(chat_request(png_file))
    job = await follow(chat_app, sub.job.id)
    assert job is not None and job.status is JobStatus.DELIVERED
    status = poster.status_of(job)
    assert status.where == "t1" and status.edits >= 2  # submitted -> rendering -> delivered
    assert status.text.startswith("✅ **OpenVideo** delivered · $0.20 charged")
    assert status.buttons == [f"animate:reroll:{job.id}", f"animate:delete:{job.id}"]
    (clip,) = poster.clips()
    assert clip.where == "t1" and clip.text.startswith("<@111> your clip is ready")
    assert clip.file is not None and clip.file[4:8] == b"ftyp"
    assert job.delivered_ref == clip.ref
    statuses = [m for m in poster.messages.values() if m.file is None]
    assert len(statuses) == 1


async def test_a_restart_after_posting_does_not_post_again(
    chat_app: App, poster: RecordingPoster, png_file: Path
) -> None:
    sub = await chat_app.service.animate(chat_request(png_file))
    job = await follow(chat_app, sub.job.id)
    assert job is not None
    sink = chat_app.sinks.for_job(job)
    assert isinstance(sink, ChatSink)
    # the runner crashed after posting and before recording: it delivers again
    again = await sink.deliver(job, Clip(data=b"\x00\x00\x00\x18ftypmp42", filename="x.mp4"))
    assert again == job.delivered_ref
    assert len(poster.clips()) == 1


async def test_an_upload_refused_posts_a_link_with_the_reason(
    make_chat_app: Any, poster: RecordingPoster, png_file: Path
) -> None:
    poster.refuse_upload = "This workspace does not take files this large."

    async def link(job: Any, clip: Clip) -> str:
        return f"https://bot.example/c/{job.id}"

    async with make_chat_app(links=link) as app:
        sub = await app.service.animate(chat_request(png_file))
        job = await follow(app, sub.job.id)
    assert job is not None and job.status is JobStatus.DELIVERED
    assert poster.clips() == []
    posted = poster.messages[job.delivered_ref or ""]
    assert "This workspace does not take files this large." in posted.text
    assert f"https://bot.example/c/{job.id}" in posted.text


async def test_over_the_limit_and_not_shrinkable_falls_back_to_the_providers_link(
    make_chat_app: Any, poster: RecordingPoster, png_file: Path
) -> None:
    poster.limit = 100  # no clip fits in 100 bytes
    async with make_chat_app() as app:
        sub = await app.service.animate(chat_request(png_file))
        job = await follow(app, sub.job.id)
    assert job is not None and job.status is JobStatus.DELIVERED
    posted = poster.messages[job.delivered_ref or ""]
    assert "over this channel's upload limit" in posted.text
    assert "The provider's link (it lasts 7 days)" in posted.text
    assert job.output_url is not None and job.output_url in posted.text


async def test_a_shrunk_clip_is_posted_with_a_note(
    make_chat_app: Any, poster: RecordingPoster, png_file: Path
) -> None:
    poster.limit = 1000

    def fitter(data: bytes, limit: int) -> bytes:
        assert limit == 1000
        return b"\x00\x00\x00\x18ftypsmall"

    async with make_chat_app(fitter=fitter) as app:
        sub = await app.service.animate(chat_request(png_file))
        job = await follow(app, sub.job.id)
    assert job is not None
    (clip,) = poster.clips()
    assert clip.file == b"\x00\x00\x00\x18ftypsmall"
    assert "Re-encoded from" in clip.text


async def test_nsfw_is_withheld_where_not_allowed_and_the_requester_told(
    chat_app: App, poster: RecordingPoster, png_file: Path, simulator: Simulator
) -> None:
    simulator.next_outcome(Outcome(nsfw=True))
    sub = await chat_app.service.animate(chat_request(png_file))
    job = await follow(chat_app, sub.job.id)
    assert job is not None and job.status is JobStatus.DELIVERED
    assert poster.clips() == []
    assert job.delivered_ref == "withheld:nsfw"
    ((who, text),) = poster.private
    assert who == "discord:111" and "not safe for work" in text and "$0.20" in text
    assert "not safe for work" in poster.status_of(job).text
    reservation = await chat_app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "settled"


async def test_nsfw_is_posted_where_the_channel_allows_it(
    chat_app: App, poster: RecordingPoster, png_file: Path, simulator: Simulator
) -> None:
    poster.nsfw_ok = True
    simulator.next_outcome(Outcome(nsfw=True))
    sub = await chat_app.service.animate(chat_request(png_file))
    await follow(chat_app, sub.job.id)
    assert len(poster.clips()) == 1 and poster.private == []


async def test_a_failure_shows_the_reason_and_that_nothing_was_charged(
    chat_app: App, poster: RecordingPoster, png_file: Path, simulator: Simulator
) -> None:
    simulator.next_outcome(Outcome(status="failed", code=5000, error="GPU fell over"))
    sub = await chat_app.service.animate(chat_request(png_file))
    job = await follow(chat_app, sub.job.id)
    assert job is not None and job.status is JobStatus.FAILED
    status = poster.status_of(job)
    assert status.text.startswith("❌ **OpenVideo** failed · not charged")
    assert "GPU fell over" in status.text
    assert status.buttons == [f"animate:retry:{job.id}", f"animate:delete:{job.id}"]


async def test_a_deleted_job_is_not_posted(
    chat_app: App, poster: RecordingPoster, png_file: Path
) -> None:
    sub = await chat_app.service.animate(chat_request(png_file))
    job = await follow(chat_app, sub.job.id)
    assert job is not None
    poster.messages.clear()
    await chat_app.db.jobs.update(job.id, meta={**job.meta, "deleted_by": "discord:111"})
    sink = chat_app.sinks.for_job(job)
    assert await sink.deliver(job, Clip(data=b"x", filename="x.mp4")) == "deleted"
    assert poster.messages == {}
