"""/animate-admin for workspace admins and owners (caps, saved LoRAs, the spend report,
pause), /animate-usage, and the App Home tab."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.slack import payloads
from tests.slack.conftest import SlackHarness


async def admin(slack: SlackHarness, text: str, *, user: str = "UADMIN") -> str:
    before = len(slack.fake.responses)
    status, _ = await slack.command("/animate-admin", text, user=user)
    assert status == 200 and len(slack.fake.responses) == before + 1
    answer: dict[str, Any] = slack.fake.responses[-1]
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


@pytest.mark.parametrize("text", ["caps workspace daily=1", "pause", "lora save x https://a/b 1"])
async def test_a_member_who_is_not_an_admin_changes_nothing(slack: SlackHarness, text: str) -> None:
    said = await admin(slack, text, user="U1")
    assert "Only the workspace's administrators" in said
    assert not await slack.app.db.servers.is_paused("slack:T0TEAM")
    assert await slack.app.db.servers.loras("slack:T0TEAM") == []


async def test_caps_for_the_workspace_and_a_member_apply_to_the_next_clip(
    slack: SlackHarness,
) -> None:
    said = await admin(slack, "caps workspace daily=20 concurrent=3")
    assert "Workspace caps are now: daily $20.00" in said and "at once 3" in said
    said = await admin(slack, "caps <@U1|ana> daily=0.05")
    assert "Member U1 now has their own caps: daily $0.05" in said
    shown = await admin(slack, "caps")
    assert "Workspace: daily $20.00" in shown
    view = await slack.open_modal("waves")
    answer = await slack.submit(view, image=[slack.image()])
    assert "only $0.05 is left of your daily limit" in answer["errors"]["model"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("caps workspace daily=lots", "is not an amount"),
        ("caps @ana daily=2", "names no member"),
        ("caps workspace speed=2", "is not a cap setting"),
        ("lora save wiggle notalink", "is not an http(s) link"),
        ("lora save No/Slash https://a/b", "is not usable"),
        ("report soon", "is not a number of days"),
        ("frobnicate", "is not an /animate-admin command"),
    ],
)
async def test_a_mistyped_admin_command_says_what_is_allowed(
    slack: SlackHarness, text: str, words: str
) -> None:
    assert words in await admin(slack, text)


async def test_saved_loras_are_used_by_name_in_the_modal(slack: SlackHarness) -> None:
    said = await admin(slack, "lora save Wiggle <https://loras.example/wiggle.safetensors> 0.7")
    assert "Saved LoRA `wiggle` (0.7)" in said
    assert "wiggle" in await admin(slack, "lora list")
    view = await slack.open_modal("waves")
    await slack.interact(payloads.field_change(view, "model", model="wan-2.2-fast"))
    view = slack.fake.views[view["id"]]
    hint = next(b for b in view["blocks"] if b.get("block_id") == "lora:loras/wan-2.2-fast")
    assert "wiggle (0.7)" in hint["hint"]["text"]
    assert await slack.submit(view, image=[slack.image()], **{"lora:loras": "wiggle"}) == {}
    job = await slack.job_for(view)
    assert job.params["loras"] == [
        {"path": "https://loras.example/wiggle.safetensors", "scale": 0.7}
    ]
    assert "Deleted the saved LoRA 'wiggle'" in await admin(slack, "lora delete wiggle")


async def test_pause_stops_new_clips_and_resume_restarts_them(slack: SlackHarness) -> None:
    assert "paused" in await admin(slack, "pause", user="UOWNER")
    view = await slack.open_modal("waves")
    answer = await slack.submit(view, image=[slack.image()])
    assert "paused" in answer["errors"]["model"]
    assert "running again" in await admin(slack, "resume", user="UOWNER")
    view = await slack.open_modal("waves")
    assert await slack.submit(view, image=[slack.image()]) == {}


async def test_the_spend_report_is_a_csv_sent_privately(slack: SlackHarness) -> None:
    view = await slack.animate()
    await slack.follow((await slack.job_for(view)).id)
    said = await admin(slack, "report 7")
    assert "1 rows, $0.10 in all" in said and "direct message" in said
    (complete,) = [
        c for c in slack.fake.calls_to("files.completeUploadExternal")
        if c.args.get("channel_id") == "DUADMIN"
    ]  # fmt: skip
    report = next(m for m in slack.fake.messages["DUADMIN"] if m.get("files"))
    data = slack.fake.uploads[report["files"][0]["id"]].decode()
    rows = list(csv.DictReader(io.StringIO(data)))
    assert rows[0]["member"] == "slack:U1" and rows[0]["spent_micros"] == "100000"
    assert report["files"][0]["name"].startswith("animate-spend-T0TEAM-")
    assert complete.args["initial_comment"].startswith("The workspace's spend")


async def test_usage_is_private_and_shows_every_cap(slack: SlackHarness) -> None:
    await slack.app.db.ledger.set_limits("user", "slack:U1", daily_micros=1_000_000)
    view = await slack.animate()
    await slack.follow((await slack.job_for(view)).id)
    status, _ = await slack.command("/animate-usage")
    assert status == 200
    answer = slack.fake.responses[-1]
    assert answer["response_type"] == "ephemeral"
    assert "You today: $0.10 spent, $0.00 held, *$0.90* left of $1.00" in answer["text"]
    assert "resets" in answer["text"]
    assert "This workspace: 0 rendering at once" in answer["text"]


async def test_the_home_tab_shows_the_budget_and_recent_clips(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    status, _ = await slack.post(payloads.home_opened("U1"), content_type="application/json")
    await slack.settle()
    assert status == 200
    home = slack.fake.home_views["U1"]
    assert home["type"] == "home"
    text = str(home["blocks"])
    assert job.id in text and "delivered" in text and "$0.10 charged" in text
    assert "You today" in text
