"""/animate from the modal to a clip in the thread: bolt driven by signed HTTP requests, the
fake Slack Web API, the provider simulator and a real database."""

from __future__ import annotations

from pathlib import Path

from bot.slack_adapter.blocks import REQUEST_EVENT, STATUS_EVENT
from storage import JobStatus
from tests.slack.conftest import SlackHarness, slack_settings
from tests.slack.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, by_metadata, metadata_job


async def test_animate_opens_a_modal_then_posts_the_clip_in_the_thread(slack: SlackHarness) -> None:
    fake = slack.fake
    view = await slack.open_modal("the lamp flickers")
    (opened,) = fake.calls_to("views.open")
    assert opened.token == BOT_TOKEN and opened.args["trigger_id"]
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["prompt"]["element"]["initial_value"] == "the lamp flickers"
    assert blocks["image"]["element"]["type"] == "file_input"
    assert blocks["image"]["element"]["max_files"] == 1
    assert blocks["model"]["element"]["initial_option"]["value"] == "openvideo"
    assert "*Price: $0.10*" in blocks["price"]["text"]["text"]  # 5 s at 480p, $0.02/s

    image = slack.image()
    assert await slack.submit(view, image=[image], resolution="720p") == {}
    job = await slack.job_for(view)
    assert job.cost_micros == 200_000 and job.user_id == "slack:U1"
    assert job.server_id == "slack:T0TEAM"

    (summary,) = by_metadata(fake.messages["C1"], REQUEST_EVENT)
    assert metadata_job(summary) == job.id and "thread_ts" not in summary
    assert "$0.20" in summary["text"] and "&gt;" not in summary["text"]
    assert job.thread_id == summary["ts"] and job.channel_id == "C1"
    # the image was read from Slack's file host with the bot token
    assert any(path.endswith("cat.png") and auth == f"Bearer {BOT_TOKEN}"
               for path, auth in fake.file_requests)  # fmt: skip

    job = await slack.follow(job.id)
    assert job.status is JobStatus.DELIVERED
    thread = fake.thread("C1", summary["ts"])
    (clip,) = fake.clip_messages()
    assert clip in thread and clip["thread_ts"] == summary["ts"]
    assert clip["files"][0]["name"] == f"animate-{job.id}.mp4"
    assert clip["text"].startswith("<@U1> your clip is ready")
    assert fake.uploads[clip["files"][0]["id"]][4:8] == b"ftyp"
    assert job.delivered_ref == clip["files"][0]["permalink"]
    for method in ("files.getUploadURLExternal", "upload", "files.completeUploadExternal"):
        assert len(fake.calls_to(method)) == 1, method
    (status,) = by_metadata(thread, STATUS_EVENT)
    assert status["edits"] >= 1 and status["text"].startswith("✅ *OpenVideo* delivered")
    buttons = [e["action_id"] for b in status["blocks"] if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    assert buttons == [f"animate:reroll:{job.id}", f"animate:delete:{job.id}"]
    reservation = await slack.app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "settled"
    assert reservation.settled_micros == 200_000


async def test_a_channel_the_bot_is_not_in_costs_nothing_and_says_how_to_invite_it(
    slack: SlackHarness,
) -> None:
    fake = slack.fake
    view = await slack.open_modal("waves", channel="C9")  # the bot was never invited to C9
    assert await slack.submit(view, image=[slack.image()]) == {}
    job = await slack.job_for(view)
    assert job.status is JobStatus.CANCELLED and job.provider_task_id is None
    reservation = await slack.app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "voided"
    (told,) = fake.messages["DU1"]  # ephemeral in C9 is refused too: a direct message
    assert "I can't post in <#C9> (not_in_channel)" in told["text"]
    assert "/invite <@UBOT>" in told["text"] and "nothing was charged" in told["text"]
    assert fake.calls_to("files.completeUploadExternal") == []


async def test_no_enabled_model_is_said_instead_of_a_modal(
    simulator: object, database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings = slack_settings(
        simulator,  # type: ignore[arg-type]
        database_url,
        fake_slack,
        wavespeed_api_key=None,
        novita_api_key=None,
    )
    harness = SlackHarness(settings, fake_slack, tmp_path)
    await harness.start()
    try:
        await harness.command("/animate", "waves", response_url=fake_slack.response_url())
    finally:
        await harness.stop()
    assert fake_slack.views == {}
    (said,) = fake_slack.responses
    assert "No video model is enabled" in said["text"]


async def test_no_secret_is_kept_with_the_job(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    stored = repr(job) + repr(await slack.app.db.jobs.history(job.id))
    assert BOT_TOKEN not in stored and SIGNING_SECRET not in stored
    assert job.image_ref.endswith("/cat.png") and "Bearer" not in stored
