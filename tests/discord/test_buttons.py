"""Cancel, Re-roll, Retry and Delete as Discord buttons: who may press them, what each does,
and that they work on a bot restarted since it posted them (custom ids + `DynamicItem`)."""

from __future__ import annotations

from typing import Any

from providers.simulator import Outcome, Simulator
from storage import JobStatus
from tests.discord.conftest import Bot
from tests.discord.fake_discord import Message
from tests.discord.helpers import money_moved
from tests.discord.payloads import MANAGE_MESSAGES, MEMBER_PERMISSIONS


def status_of(bot: Bot, job_id: str, thread_id: str | None) -> Message:
    assert thread_id is not None
    found = [
        m for m in bot.fake.channel_messages(thread_id)
        if not m.files and any(cid.endswith(f":{job_id}") for cid in m.custom_ids())
    ]  # fmt: skip
    assert found, "no status message with buttons"
    return found[-1]


async def test_cancel_only_by_the_requester_or_a_moderator(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    status = await bot.fake.wait_for(lambda: status_of(bot, job.id, job.thread_id))
    assert status.custom_ids() == [f"animate:cancel:{job.id}"]

    other = bot.press(f"animate:cancel:{job.id}", status, user_id="222")
    assert await bot.answer(other) == (
        "Only the person who started this clip, or a moderator, can cancel it. "
        "Nothing was charged."
    )
    current = await bot.app.db.jobs.get(job.id)
    assert current is not None and not current.cancel_requested

    mod = bot.press(f"animate:cancel:{job.id}", status, user_id="333",
                    permissions=MEMBER_PERMISSIONS | MANAGE_MESSAGES)  # fmt: skip
    said = await bot.answer(mod)
    assert said.startswith("Cancel requested. The provider has already started")
    assert status.content.startswith("🛑 **OpenVideo**: cancel requested")  # redrawn
    done = await bot.finish(job.id)
    assert done.status is JobStatus.CANCELLED
    assert bot.fake.clips() == []


async def test_reroll_after_a_restart_shows_the_price_then_charges_once(
    make_bot: Any,
) -> None:
    async with make_bot(owner="before") as bot:
        job = await bot.started(bot.animate(duration=5, resolution="720p"))
        await bot.finish(job.id)
        (clip,) = bot.fake.clips()
    # A new process: new client, new App, same database; the clip's buttons still work.
    async with make_bot(owner="after") as bot:
        moved = len(await money_moved(bot.app))
        other = bot.press(f"animate:reroll:{job.id}", clip, user_id="222")
        assert "Only the person who started this clip" in await bot.answer(other)

        shown = bot.press(f"animate:reroll:{job.id}", clip)
        said = await bot.answer(shown)
        assert said.startswith("A re-roll (same options, a new seed) is a new clip and costs "
                               "**$0.20**")  # fmt: skip
        (confirm_msg,) = [m for m in bot.fake.messages.values()
                          if m.custom_ids() == [f"animate:reroll-ok:{job.id}"]]  # fmt: skip
        assert confirm_msg.ephemeral
        assert len(await money_moved(bot.app)) == moved  # a price shown holds nothing

        payload = bot.p.button(f"animate:reroll-ok:{job.id}", bot.fake.message_json(confirm_msg))
        confirm = bot.send(payload)
        said = await bot.answer(confirm)
        assert said.startswith("Re-roll started as job `")
        again = [j for j in await bot.app.db.jobs.list_jobs() if j.id != job.id]
        assert len(again) == 1 and again[0].thread_id == job.thread_id
        assert again[0].meta["again_of"] == job.id
        assert again[0].params["seed"] != job.params.get("seed")

        bot.fake.interactions[payload["token"]].responded = False
        bot.send(payload)  # the same press delivered again
        await bot.fake.wait_for(
            lambda: len(bot.fake.calls_to("POST", rf"^/interactions/{confirm}/")) == 2
        )
        await bot.front.idle()
        assert len(await bot.app.db.jobs.list_jobs()) == 2
        assert len(await money_moved(bot.app)) == moved + 1

        done = await bot.finish(again[0].id)
        assert done.status is JobStatus.DELIVERED and len(bot.fake.clips()) == 2


async def test_retry_after_a_failure(bot: Bot, simulator: Simulator) -> None:
    simulator.next_outcome(Outcome(status="failed", code=5000, error="GPU fell over"))
    job = await bot.started(bot.animate())
    failed = await bot.finish(job.id)
    assert failed.status is JobStatus.FAILED
    status = status_of(bot, job.id, job.thread_id)
    assert status.content.startswith("❌ **OpenVideo** failed · not charged")
    assert status.custom_ids() == [f"animate:retry:{job.id}", f"animate:delete:{job.id}"]
    said = await bot.answer(bot.press(f"animate:retry:{job.id}", status))
    assert said.startswith("A retry (same options) is a new clip and costs **$0.10**")


async def test_delete_removes_the_status_and_the_clip(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    done = await bot.finish(job.id)
    (clip,) = bot.fake.clips()
    status = status_of(bot, job.id, job.thread_id)
    mod_delete = bot.press(f"animate:delete:{job.id}", clip, user_id="222")
    assert "can delete it" in await bot.answer(mod_delete)
    assert bot.fake.clips() == [clip]

    said = await bot.answer(bot.press(f"animate:delete:{job.id}", clip))
    assert said == "Deleted."
    assert clip.deleted and status.deleted
    assert done.delivered_ref and done.message_id  # what the delete used


async def test_a_button_from_an_unknown_version_does_nothing(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    button = {"type": 2, "style": 2, "label": "Explode", "custom_id": f"animate:explode:{job.id}"}
    old = bot.fake._new_message(
        int(job.thread_id or 0), "from a later version", {"components": [
            {"type": 1, "components": [button]}]}, [],
    )  # fmt: skip
    said = await bot.answer(bot.press(f"animate:explode:{job.id}", old))
    assert "another version of the bot" in said
