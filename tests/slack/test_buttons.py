"""The buttons on the status message: Cancel, Re-roll, Retry, Delete, with who may press
them (the requester; a workspace admin or owner for Cancel and Delete), working after a
restart, a new charge shown before it is made and never made twice."""

from __future__ import annotations

import json
from typing import Any

from bot.slack_adapter.blocks import REQUEST_EVENT, STATUS_EVENT
from providers.simulator import Outcome, Simulator
from storage import Job, JobStatus
from tests.slack import payloads
from tests.slack.conftest import SlackHarness
from tests.slack.fake_slack import by_metadata


async def press(slack: SlackHarness, action: str, job: Job, *, user: str = "U1",
                ephemeral: bool = False) -> dict[str, Any]:  # fmt: skip
    """Press a button; returns what the bot answered through the response_url."""
    before = len(slack.fake.responses)
    status, _ = await slack.interact(
        payloads.button_press(
            f"animate:{action}:{job.id}", user=user, message_ts=job.message_id or "1.1",
            response_url=slack.fake.response_url(), ephemeral=ephemeral,
        )
    )  # fmt: skip
    assert status == 200
    assert len(slack.fake.responses) == before + 1
    return slack.fake.responses[-1]


def buttons(answer: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in answer.get("blocks", []) if b["type"] == "actions"
            for e in b["elements"]]  # fmt: skip


async def delivered(slack: SlackHarness) -> Job:
    view = await slack.animate()
    return await slack.follow((await slack.job_for(view)).id)


async def test_the_requester_cancels_a_running_clip(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.job_for(view)
    assert job.status is JobStatus.SUBMITTED and job.message_id
    answer = await press(slack, "cancel", job)
    assert answer["response_type"] == "ephemeral" and "Cancel requested" in answer["text"]
    status = next(m for m in slack.fake.messages["C1"] if m["ts"] == job.message_id)
    assert "cancel requested" in status["text"]
    job = await slack.follow(job.id)
    assert job.status is JobStatus.CANCELLED
    assert slack.fake.clip_messages() == []


async def test_another_member_cannot_cancel_but_a_workspace_admin_can(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.job_for(view)
    refused = await press(slack, "cancel", job, user="U2")
    assert "Only the person who started this clip, or a moderator" in refused["text"]
    assert (await slack.app.db.jobs.get(job.id)).cancel_requested is False  # type: ignore[union-attr]
    admin = await press(slack, "cancel", job, user="UADMIN")
    assert "Cancel requested" in admin["text"]
    assert (await slack.app.db.jobs.get(job.id)).cancel_requested is True  # type: ignore[union-attr]


async def test_reroll_shows_the_price_then_confirm_charges_once(slack: SlackHarness) -> None:
    fake = slack.fake
    job = await delivered(slack)
    answer = await press(slack, "reroll", job)
    assert "costs *$0.10*" in answer["text"] and buttons(answer) == [f"animate:reroll-ok:{job.id}"]
    assert len(await slack.app.db.jobs.list_jobs(limit=10)) == 1  # nothing reserved yet

    confirm = payloads.button_press(
        f"animate:reroll-ok:{job.id}", message_ts="9.9", response_url=fake.response_url(),
        ephemeral=True,
    )  # fmt: skip
    await slack.interact(confirm)
    started = fake.responses[-1]
    assert started["replace_original"] is True and "Re-roll started as job" in started["text"]
    jobs = await slack.app.db.jobs.list_jobs(limit=10)
    assert len(jobs) == 2
    again = next(j for j in jobs if j.id != job.id)
    assert again.thread_id == job.thread_id and again.params["seed"] != job.params.get("seed")

    # the same press delivered again (a new signature, the same trigger): no second charge
    await slack.post(payloads.interaction(confirm))
    await slack.settle()
    assert len(await slack.app.db.jobs.list_jobs(limit=10)) == 2

    again = await slack.follow(again.id)
    assert again.status is JobStatus.DELIVERED
    assert len(fake.clip_messages()) == 2
    assert all(c["thread_ts"] == job.thread_id for c in fake.clip_messages())


async def test_someone_else_cannot_reroll_your_clip(slack: SlackHarness) -> None:
    job = await delivered(slack)
    answer = await press(slack, "reroll", job, user="UADMIN")
    assert "Only the person who started this clip can run it again" in answer["text"]


async def test_a_failed_clip_can_be_retried(slack: SlackHarness, simulator: Simulator) -> None:
    simulator.next_outcome(Outcome(status="failed", code=5000, error="GPU fell over"))
    view = await slack.animate()
    job = await slack.follow((await slack.job_for(view)).id)
    assert job.status is JobStatus.FAILED
    (status,) = by_metadata(slack.fake.thread("C1", job.thread_id or ""), STATUS_EVENT)
    assert "not charged" in status["text"]
    assert f"animate:retry:{job.id}" in json.dumps(status["blocks"])
    answer = await press(slack, "retry", job)
    assert buttons(answer) == [f"animate:retry-ok:{job.id}"]
    await press(slack, "retry-ok", job, ephemeral=True)
    jobs = await slack.app.db.jobs.list_jobs(limit=10)
    assert len(jobs) == 2


async def test_delete_removes_the_clip_and_the_status_and_keeps_a_note(slack: SlackHarness) -> None:
    fake = slack.fake
    job = await delivered(slack)
    assert len(fake.clip_messages()) == 1
    answer = await press(slack, "delete", job)
    assert answer["text"].startswith("Deleted.")
    assert fake.clip_messages() == []
    thread = fake.thread("C1", job.thread_id or "")
    assert by_metadata(thread, STATUS_EVENT) == []
    (summary,) = by_metadata(thread, REQUEST_EVENT)
    assert summary["text"] == "🗑️ Clip deleted by <@U1>."
    assert (await slack.app.db.jobs.get(job.id)).meta["deleted_by"] == "slack:U1"  # type: ignore[union-attr]


async def test_buttons_work_after_a_restart(slack: SlackHarness) -> None:
    job = await delivered(slack)
    await slack.restart()  # a new process: nothing of the first one is in memory
    answer = await press(slack, "reroll", job)
    assert buttons(answer) == [f"animate:reroll-ok:{job.id}"]
    answer = await press(slack, "delete", job, user="UOWNER")  # a workspace owner
    assert answer["text"].startswith("Deleted.")
    assert slack.fake.clip_messages() == []


async def test_a_running_clip_deleted_leaves_no_status_and_no_clip(slack: SlackHarness) -> None:
    view = await slack.animate()
    job = await slack.job_for(view)
    answer = await press(slack, "delete", job)
    assert answer["text"].startswith("Deleted. Cancel requested.")
    job = await slack.follow(job.id)  # the runner ends it after the provider finishes
    assert job.status is JobStatus.CANCELLED
    thread = slack.fake.thread("C1", job.thread_id or "")
    assert by_metadata(thread, STATUS_EVENT) == [] and slack.fake.clip_messages() == []
    (summary,) = by_metadata(thread, REQUEST_EVENT)
    assert summary["text"] == "🗑️ Clip deleted by <@U1>."
