"""Delivery on Discord through the bot token: the upload limit and Discord's 413, the
15-minute interaction token, 429s and 5xx, NSFW, a deleted thread, and exactly one clip
with two runners and after a restart."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from bot.chat.delivery import ChatSink
from bot.sinks import Clip
from providers.simulator import Outcome, Simulator
from storage import JobStatus
from tests.discord.conftest import Bot

MIB = 1024 * 1024


async def test_a_413_from_discord_posts_a_link_with_the_reason(bot: Bot) -> None:
    bot.fake.upload_limit = 1000  # Discord refuses any file over 1,000 bytes here
    job = await bot.started(bot.animate())
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED
    assert bot.fake.clips() == []
    refused = bot.fake.calls_to("POST", rf"^/channels/{job.thread_id}/messages$")
    assert any(c.status == 413 and c.files for c in refused)
    (posted,) = [m for m in bot.fake.channel_messages(job.thread_id or "")
                 if "your clip is ready" in m.content]  # fmt: skip
    assert "Discord refused the 0.0 MB file: it is over this server's upload limit." in (
        posted.content
    )
    assert "The provider's link (it lasts 7 days)" in posted.content
    assert done.output_url and done.output_url in posted.content
    assert posted.custom_ids() == [f"animate:reroll:{job.id}", f"animate:delete:{job.id}"]


async def test_with_the_web_endpoint_the_link_is_the_bots_own(
    make_bot: Any, tmp_path: Any
) -> None:
    async with make_bot(
        public_base_url="https://bot.example", url_signing_secret="s" * 32,
        clip_dir=str(tmp_path / "clips"),
    ) as bot:  # fmt: skip
        bot.fake.upload_limit = 1000
        job = await bot.started(bot.animate())
        await bot.finish(job.id)
        (posted,) = [m for m in bot.fake.channel_messages(job.thread_id or "")
                     if "your clip is ready" in m.content]  # fmt: skip
        assert "Watch or download it here: https://bot.example/c/" in posted.content


async def test_the_upload_limit_comes_from_the_interaction_and_the_server(bot: Bot) -> None:
    bot.p.attachment_size_limit = 500 * MIB  # a member with Nitro: the bot has no Nitro
    job = await bot.started(bot.animate())
    assert job.sink["upload_limit"] == 10 * MIB

    bot.p.attachment_size_limit = 100
    small = await bot.started(bot.animate())
    assert small.sink["upload_limit"] == 100
    done = await bot.finish(small.id)
    assert done.status is JobStatus.DELIVERED
    assert [c.files[0][0] for c in bot.fake.clips()] == [f"{job.id}.mp4"]  # not `small`
    (posted,) = [m for m in bot.fake.channel_messages(small.thread_id or "")
                 if "your clip is ready" in m.content]  # fmt: skip
    assert "over this channel's upload limit of 0.0 MB" in posted.content


async def test_past_fifteen_minutes_everything_goes_through_the_bot_token(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    token_calls = len(bot.fake.calls_to("", r"^/webhooks/") + bot.fake.calls)
    bot.fake.later(16 * 60)  # the interaction's token is dead from here on
    mark = len(bot.fake.calls)
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED and len(bot.fake.clips()) == 1
    after = bot.fake.calls[mark:]
    assert after and not any(c.path.startswith(("/webhooks", "/interactions")) for c in after)
    assert all(c.status < 400 for c in after)
    # A press long after the command has its own fresh token and still works.
    (clip,) = bot.fake.clips()
    said = await bot.answer(bot.press(f"animate:reroll:{job.id}", clip))
    assert "costs **$0.10**" in said
    assert token_calls  # the command itself did use its token, within the first seconds


async def test_a_429_is_waited_out_as_discord_says_and_the_clip_posted_once(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    bot.fake.fail_next("POST", rf"^/channels/{job.thread_id}/messages$", 429, retry_after=0.01)
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED
    posts = bot.fake.calls_to("POST", rf"^/channels/{job.thread_id}/messages$")
    assert [c.status for c in posts][-2:] == [429, 200]
    assert len(bot.fake.clips()) == 1


async def test_a_5xx_is_retried_by_discord_py(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    bot.fake.fail_next("POST", rf"^/channels/{job.thread_id}/messages$", 502)
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED and len(bot.fake.clips()) == 1
    posts = bot.fake.calls_to("POST", rf"^/channels/{job.thread_id}/messages$")
    assert [c.status for c in posts][-2:] == [502, 200]


async def test_nsfw_is_not_posted_in_a_channel_that_is_not_age_restricted(
    bot: Bot, simulator: Simulator
) -> None:
    simulator.next_outcome(Outcome(nsfw=True))
    job = await bot.started(bot.animate())
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED and done.delivered_ref == "withheld:nsfw"
    assert bot.fake.clips() == []
    (dm,) = [c for c in bot.fake.channels.values() if c.get("dm_user") == "111"]
    (note,) = bot.fake.channel_messages(dm["id"])
    assert "not safe for work" in note.content and "$0.10" in note.content
    statuses = bot.fake.channel_messages(job.thread_id or "")
    assert any("Not posted here: the provider flagged it" in m.content for m in statuses)


async def test_nsfw_is_posted_in_an_age_restricted_channel(
    bot: Bot, simulator: Simulator
) -> None:
    bot.fake.channels[int(bot.fake.channel_id)]["nsfw"] = True
    simulator.next_outcome(Outcome(nsfw=True))
    job = await bot.started(bot.animate())
    await bot.finish(job.id)
    assert len(bot.fake.clips()) == 1  # in the thread, whose parent is age-restricted


async def test_nsfw_with_closed_dms_says_so_without_the_clip(
    bot: Bot, simulator: Simulator
) -> None:
    bot.fake.dm_closed.add("111")
    simulator.next_outcome(Outcome(nsfw=True))
    job = await bot.started(bot.animate())
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED and bot.fake.clips() == []
    notes = [m for m in bot.fake.channel_messages(job.thread_id or "")
             if "direct messages are closed" in m.content]  # fmt: skip
    assert len(notes) == 1 and "http" not in notes[0].content


async def test_a_thread_deleted_meanwhile_means_the_channel(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    assert job.thread_id and job.channel_id
    bot.fake.delete_channel(job.thread_id)
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED
    (clip,) = bot.fake.clips()
    assert clip.channel_id == int(job.channel_id)
    in_channel = bot.fake.channel_messages(job.channel_id)
    assert any(m.content.startswith("✅ **OpenVideo** delivered") for m in in_channel)


async def test_a_deleted_status_message_is_posted_again(bot: Bot) -> None:
    job = await bot.started(bot.animate())
    current = await bot.app.db.jobs.get(job.id)
    assert current is not None and current.message_id
    first = int(current.message_id.rsplit("/", 1)[1])
    bot.fake.messages[first].deleted = True
    done = await bot.finish(job.id)
    assert done.message_id and not done.message_id.endswith(f"/{first}")


async def test_two_runners_deliver_each_clip_once(make_bot: Any) -> None:
    async with make_bot(owner="runner-a") as a, make_bot(owner="runner-b") as b:
        stop = asyncio.Event()
        other = asyncio.create_task(b.app.runner.run(stop))
        try:
            jobs = [await a.started(a.animate(f"clip {n}")) for n in range(3)]
            for job in jobs:
                done = await a.finish(job.id)
                assert done.status is JobStatus.DELIVERED
        finally:
            stop.set()
            await other
        posted = sorted(c.files[0][0] for c in a.fake.clips())
        assert posted == sorted(f"{j.id}.mp4" for j in jobs)


@pytest.mark.parametrize("nonce_window", [True, False], ids=["nonce", "history"])
async def test_a_restart_between_posting_and_recording_posts_nothing_more(
    make_bot: Any, nonce_window: bool
) -> None:
    async with make_bot(owner="first") as bot:
        job = await bot.started(bot.animate())
        done = await bot.finish(job.id)
        (clip,) = bot.fake.clips()
    bot.fake.honour_nonces = nonce_window  # past Discord's nonce window: history decides
    async with make_bot(owner="restarted") as bot:
        sink = bot.app.sinks.get("discord")
        assert isinstance(sink, ChatSink)
        # The runner died after posting and before recording: it hands the clip over again.
        again = await sink.deliver(
            _as_completed(done), Clip(data=clip.files[0][1], filename=f"{job.id}.mp4")
        )
        assert again.endswith(f"/{clip.id}")
        assert bot.fake.clips() == [clip]


def _as_completed(job: Any) -> Any:
    return dataclasses.replace(job, status=JobStatus.COMPLETED, delivered_ref=None)


async def test_a_worker_without_a_gateway_delivers(make_bot: Any, simulator: Simulator) -> None:
    """RUN_WORKER=false: the discord process only takes commands; a worker process with the
    bot token (no gateway) delivers through REST."""
    from bot.app import open_app
    from bot.cli.jobs import follow
    from bot.cli.processes import add_chat_sinks, default_sinks

    async with make_bot(owner="gateway", run_worker=False) as bot:
        job = await bot.started(bot.animate())
        settings = bot.app.settings
        async with open_app(settings, sinks=default_sinks(settings), owner="worker") as worker:
            add_chat_sinks(worker)
            done = await follow(worker, job.id)
        assert done is not None and done.status is JobStatus.DELIVERED
        assert len(bot.fake.clips()) == 1
        assert bot.fake.sockets == []  # nobody connected to the gateway
