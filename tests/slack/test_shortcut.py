"""The message shortcut *Animate this image*: the same modal for a picture already posted,
and the clip in that message's thread."""

from __future__ import annotations

from typing import Any

from bot.slack_adapter.blocks import REQUEST_EVENT
from storage import JobStatus
from tests.slack import payloads
from tests.slack.conftest import SlackHarness
from tests.slack.fake_slack import BOT_TOKEN, by_metadata


def posted(
    slack: SlackHarness, files: list[dict[str, Any]], *, thread_ts: str | None = None
) -> dict[str, Any]:
    """A person's message in C1 with these files (as Slack would show it)."""
    message = {"type": "message", "ts": f"1600000000.{len(slack.fake.messages.get('C1', [])):06d}",
               "user": "U2", "text": "look at this", "files": files, "channel": "C1"}  # fmt: skip
    if thread_ts:
        message["thread_ts"] = thread_ts
    slack.fake.messages.setdefault("C1", []).append(message)
    return message


async def test_the_shortcut_animates_the_messages_picture_in_its_thread(
    slack: SlackHarness,
) -> None:
    fake = slack.fake
    message = posted(slack, [slack.image("dog.png")])
    status, _ = await slack.interact(
        payloads.message_shortcut(message, response_url=fake.response_url())
    )
    assert status == 200
    (view,) = fake.views.values()
    ids = [b.get("block_id") for b in view["blocks"]]
    assert "image" not in ids  # the picture is the message's: no file to attach
    assert "dog.png" in view["blocks"][0]["elements"][0]["text"]

    assert await slack.submit(view, prompt="the dog wags its tail") == {}
    job = await slack.job_for(view)
    assert job.thread_id == message["ts"] and job.prompt == "the dog wags its tail"
    (summary,) = by_metadata(fake.messages["C1"], REQUEST_EVENT)
    assert summary["thread_ts"] == message["ts"]  # the reply is in the picture's thread
    assert any("dog.png" in path and auth == f"Bearer {BOT_TOKEN}"
               for path, auth in fake.file_requests)  # fmt: skip

    job = await slack.follow(job.id)
    assert job.status is JobStatus.DELIVERED
    (clip,) = fake.clip_messages()
    assert clip["thread_ts"] == message["ts"]


async def test_a_file_slack_did_not_describe_is_looked_up(slack: SlackHarness) -> None:
    image = slack.image("hidden.png")
    message = posted(slack, [{"id": image["id"], "file_access": "check_file_info"}])
    await slack.interact(payloads.message_shortcut(message, response_url=slack.fake.response_url()))
    (info,) = slack.fake.calls_to("files.info")
    assert info.args["file"] == image["id"]
    (view,) = slack.fake.views.values()
    assert await slack.submit(view, prompt="it moves") == {}
    job = await slack.job_for(view)
    assert job.image_ref == image["url_private_download"]


async def test_the_shortcut_on_a_message_without_a_picture_says_so(slack: SlackHarness) -> None:
    pdf = slack.fake.add_file("notes.pdf", b"%PDF", "application/pdf")
    message = posted(slack, [pdf])
    await slack.interact(payloads.message_shortcut(message, response_url=slack.fake.response_url()))
    assert slack.fake.views == {}
    (said,) = slack.fake.responses
    assert "no picture to animate" in said["text"] and said["response_type"] == "ephemeral"
