"""Buttons: ids that survive restarts, who may press what, and what each press does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.chat.actions import Action, Actor, custom_id, parse_custom_id
from bot.chat.markup import DISCORD
from bot.chat.presses import ButtonPresses
from bot.cli.jobs import follow
from bot.errors import QuotaRefused, RequestRefused
from providers.simulator import Outcome, Simulator
from storage import JobStatus
from tests.chat.conftest import RecordingPoster
from tests.chat.test_delivery import chat_request

OWNER = Actor("discord", "111", "discord:g1")
OTHER = Actor("discord", "222", "discord:g1")
MOD = Actor("discord", "333", "discord:g1", moderator=True)


def test_custom_ids_round_trip_and_refuse_strangers() -> None:
    cid = custom_id(Action.CONFIRM_REROLL, "0123456789ab")
    assert cid == "animate:reroll-ok:0123456789ab" and len(cid) <= 100
    assert parse_custom_id(cid) == (Action.CONFIRM_REROLL, "0123456789ab")
    bad_ids = ("animate:explode:0123", "other:cancel:0123", "animate:cancel:", "animate:cancel:Z")
    for bad in bad_ids:
        assert parse_custom_id(bad) is None


async def test_cancel_by_the_requester_or_a_moderator_only(
    chat_app: App, png_file: Path
) -> None:
    presses = ButtonPresses(chat_app.service)
    sub = await chat_app.service.reserve(chat_request(png_file))
    with pytest.raises(RequestRefused, match="or a moderator, can cancel"):
        await presses.press(Action.CANCEL, sub.job.id, OTHER, event_id="e1", m=DISCORD)
    result = await presses.press(Action.CANCEL, sub.job.id, MOD, event_id="e2", m=DISCORD)
    assert result.job is not None and result.job.cancel_requested
    assert "not be charged" in result.text  # not yet at the provider
    await chat_app.service.submit(sub)
    job = await chat_app.db.jobs.get(sub.job.id)
    assert job is not None and job.status is JobStatus.CANCELLED


async def test_reroll_shows_the_price_then_confirm_charges_once(
    chat_app: App, png_file: Path, poster: RecordingPoster
) -> None:
    presses = ButtonPresses(chat_app.service)
    sub = await chat_app.service.animate(chat_request(png_file))
    await follow(chat_app, sub.job.id)
    before = len(await chat_app.db.ledger.entries())
    shown = await presses.press(Action.REROLL, sub.job.id, OWNER, event_id="p1", m=DISCORD)
    assert "costs **$0.20**" in shown.text
    assert shown.confirm is not None and shown.confirm.action is Action.CONFIRM_REROLL
    assert len(await chat_app.db.ledger.entries()) == before  # showing a price holds nothing
    with pytest.raises(RequestRefused, match="Only the person who started"):
        await presses.press(Action.CONFIRM_REROLL, sub.job.id, MOD, event_id="p2", m=DISCORD)
    started = await presses.press(
        Action.CONFIRM_REROLL, sub.job.id, OWNER, event_id="p3", m=DISCORD
    )
    assert started.started is not None and started.started.thread_id == "t1"
    replay = await presses.press(
        Action.CONFIRM_REROLL, sub.job.id, OWNER, event_id="p3", m=DISCORD
    )
    assert replay.started is not None and replay.started.id == started.started.id
    done = await follow(chat_app, started.started.id)
    assert done is not None and done.status is JobStatus.DELIVERED
    assert len(poster.clips()) == 2


async def test_a_confirmed_retry_over_the_cap_is_refused_with_the_cap(
    make_chat_app: Any, png_file: Path, simulator: Simulator
) -> None:
    async with make_chat_app(user_daily_cap_usd="0.20") as app:
        presses = ButtonPresses(app.service)
        simulator.next_outcome(Outcome(status="failed", code=5000, error="x"))
        sub = await app.service.animate(chat_request(png_file))
        await follow(app, sub.job.id)
        other = await app.service.animate(chat_request(png_file))  # uses the day's $0.20
        await follow(app, other.job.id)
        with pytest.raises(QuotaRefused, match="daily limit"):
            await presses.press(Action.CONFIRM_RETRY, sub.job.id, OWNER, event_id="r", m=DISCORD)


async def test_delete_cancels_a_running_job_and_marks_it(
    chat_app: App, png_file: Path
) -> None:
    presses = ButtonPresses(chat_app.service)
    sub = await chat_app.service.animate(chat_request(png_file))
    with pytest.raises(RequestRefused, match="can delete"):
        await presses.press(Action.DELETE, sub.job.id, OTHER, event_id="d0", m=DISCORD)
    result = await presses.press(Action.DELETE, sub.job.id, OWNER, event_id="d1", m=DISCORD)
    assert result.delete_messages and result.job is not None
    assert result.job.meta["deleted_by"] == "discord:111"
    assert result.text.startswith("Deleted. Cancel requested.")
    job = await follow(chat_app, sub.job.id)
    assert job is not None and job.status is JobStatus.CANCELLED
