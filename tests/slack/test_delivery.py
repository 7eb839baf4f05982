"""Delivery to Slack through the runner's chat sink: one status message edited with
chat.update, the clip uploaded once (also after a restart), a refused or too-large upload
falling back to a link, NSFW withheld, 429s retried after Retry-After, and a channel or
thread gone meanwhile."""

from __future__ import annotations

from bot.chat.delivery import ChatSink
from bot.sinks import Clip
from bot.slack_adapter.blocks import CLIP_EVENT, REQUEST_EVENT, STATUS_EVENT
from providers.simulator import Outcome, Simulator
from storage import JobStatus
from tests.slack.conftest import SlackHarness
from tests.slack.fake_slack import by_metadata


async def test_one_status_message_is_edited_as_the_job_moves(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    thread = slack.fake.thread("C1", job.thread_id or "")
    (status,) = by_metadata(thread, STATUS_EVENT)
    assert job.message_id == status["ts"]
    history = status["history"]
    assert history[0].startswith("⏳ *OpenVideo* sent to WaveSpeed · $0.10 held")
    assert any(h.startswith("🎬 *OpenVideo* rendering") for h in history)
    assert history[-1].startswith("✅ *OpenVideo* delivered · $0.10 charged")
    updates = [c for c in slack.fake.calls_to("chat.update") if c.args["ts"] == status["ts"]]
    assert len(updates) == len(history) - 1 >= 2


async def test_a_restarted_bot_finds_its_clip_in_the_thread_and_does_not_post_again(
    slack: SlackHarness,
) -> None:
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    assert len(slack.fake.clip_messages()) == 1
    await slack.restart()
    # the runner died after the upload and before recording it: it delivers again
    sink = slack.app.sinks.for_job(job)
    assert isinstance(sink, ChatSink)
    ref = await sink.deliver(job, Clip(data=b"\x00\x00\x00\x18ftypmp42", filename="x.mp4"))
    assert ref == job.delivered_ref
    assert len(slack.fake.clip_messages()) == 1
    assert len(slack.fake.calls_to("files.completeUploadExternal")) == 1
    (replies,) = slack.fake.calls_to("conversations.replies")[-1:]
    assert replies.args["include_all_metadata"] in ("1", "true", True)


async def test_an_upload_the_workspace_refuses_becomes_a_link_with_the_reason(
    slack: SlackHarness,
) -> None:
    slack.fake.fail_next("files.completeUploadExternal", error="file_upload_size_restricted")
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    assert job.status is JobStatus.DELIVERED and slack.fake.clip_messages() == []
    (link,) = by_metadata(slack.fake.thread("C1", job.thread_id or ""), CLIP_EVENT)
    assert "This workspace does not allow files this large." in link["text"]
    assert job.output_url is not None and job.output_url in link["text"]
    assert link["text"].startswith("<@U1> your clip is ready")
    assert job.delivered_ref == f"{slack.fake.base}/archives/C1/p{link['ts']}"


async def test_an_upload_refused_as_too_large_becomes_a_link(slack: SlackHarness) -> None:
    slack.fake.upload_status = [413]
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    (link,) = by_metadata(slack.fake.thread("C1", job.thread_id or ""), CLIP_EVENT)
    assert "Slack refused the file as too large." in link["text"]
    assert "The provider's link (it lasts 7 days)" in link["text"]


async def test_rate_limits_are_waited_out_and_nothing_is_posted_twice(slack: SlackHarness) -> None:
    fake = slack.fake
    fake.fail_next("views.open", status=429, retry_after=0)
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    fake.fail_next("files.getUploadURLExternal", status=429, retry_after=0)
    fake.fail_next("files.completeUploadExternal", status=429, retry_after=0)
    view = await slack.animate()
    assert len(fake.calls_to("views.open")) == 2  # refused once, then opened
    job = await slack.follow((await slack.job_for(view)).id)
    assert job.status is JobStatus.DELIVERED
    assert len(by_metadata(fake.messages["C1"], REQUEST_EVENT)) == 1
    assert len(by_metadata(fake.messages["C1"], STATUS_EVENT)) == 1
    assert len(fake.clip_messages()) == 1
    assert len(fake.calls_to("files.completeUploadExternal")) == 2


async def test_an_nsfw_clip_is_not_posted_and_the_requester_is_told_directly(
    slack: SlackHarness, simulator: Simulator
) -> None:
    simulator.next_outcome(Outcome(nsfw=True))
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    assert job.status is JobStatus.DELIVERED and job.delivered_ref == "withheld:nsfw"
    assert slack.fake.clip_messages() == []
    (note,) = slack.fake.messages["DU1"]
    assert "not safe for work" in note["text"] and "$0.10" in note["text"]
    (status,) = by_metadata(slack.fake.thread("C1", job.thread_id or ""), STATUS_EVENT)
    assert "Not posted here" in status["text"]


async def test_a_channel_the_bot_was_removed_from_gets_nothing_and_the_clip_goes_to_dms(
    slack: SlackHarness,
) -> None:
    view = await slack.animate()
    job = await slack.job_for(view)
    slack.fake.member_of.discard("C1")  # removed from the channel while rendering
    job = await slack.follow(job.id)
    assert job.status is JobStatus.DELIVERED
    (direct,) = slack.fake.messages["DU1"]
    assert "I can no longer post files in that channel (not_in_channel)" in direct["text"]
    assert job.output_url is not None and job.output_url in direct["text"]


async def test_a_deleted_thread_means_the_clip_goes_to_the_channel(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.job_for(view)
    slack.fake.messages["C1"] = []  # the reply and its status message were deleted
    job = await slack.follow(job.id)
    assert job.status is JobStatus.DELIVERED
    (clip,) = slack.fake.clip_messages()
    assert "thread_ts" not in clip and clip["channel"] == "C1"
