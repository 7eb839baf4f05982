"""/animate through discord.py: the whole flow to a posted clip, and every refusal costs
nothing and is one ephemeral sentence."""

from __future__ import annotations

from typing import Any

import pytest

from bot.chat.actions import Actor
from bot.chat.admin import AdminOps
from storage import JobStatus
from tests.discord.conftest import Bot
from tests.discord.fake_discord import EPHEMERAL, THREAD_TYPES, FakeDiscord
from tests.discord.helpers import money_moved
from tests.discord.payloads import MEMBER_PERMISSIONS
from tests.fixtures_sim import make_png

ATTACH_FILES = 1 << 15
CREATE_PUBLIC_THREADS = 1 << 35


def callbacks(fake: FakeDiscord, interaction_id: int) -> list[dict[str, Any]]:
    return [
        c.body for c in fake.calls_to("POST", rf"^/interactions/{interaction_id}/")
    ]


async def test_animate_is_deferred_visibly_then_replied_threaded_and_posted(bot: Bot) -> None:
    iid = bot.animate("the lamp flickers", duration=5, resolution="720p")
    reply = await bot.reply(iid)
    job = await bot.started(iid)

    (ack,) = callbacks(bot.fake, iid)
    assert ack["type"] == 5 and not (ack.get("data") or {}).get("flags")  # visible defer
    assert reply.content.splitlines()[0] == "**OpenVideo** · 720p · 5 s · random seed"
    assert "> the lamp flickers" in reply.content
    assert f"<@111> · **$0.20** held · job `{job.id}`" in reply.content
    assert reply.allowed_mentions == {"parse": []}  # the reply names, never pings

    (thread,) = bot.fake.threads()
    assert thread["id"] == str(reply.id) and thread["name"] == "🎬 the lamp flickers"
    assert job.thread_id == thread["id"] and job.channel_id == bot.fake.channels[
        int(bot.fake.channel_id)]["id"]
    assert job.sink == {"kind": "discord", "upload_limit": 10 * 1024 * 1024}
    assert job.ledger_key == f"discord:{iid}"

    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED
    (clip,) = bot.fake.clips()
    assert clip.channel_id == int(thread["id"])
    assert clip.content.startswith("<@111> your clip is ready · OpenVideo · 720p · 5 s")
    assert clip.allowed_mentions is not None and clip.allowed_mentions["parse"] == []
    assert [str(u) for u in clip.allowed_mentions["users"]] == ["111"]  # pings the requester
    name, data = clip.files[0]
    assert name == f"{job.id}.mp4" and data[4:8] == b"ftyp"
    assert clip.custom_ids() == [f"animate:reroll:{job.id}", f"animate:delete:{job.id}"]
    assert done.delivered_ref is not None and done.delivered_ref.endswith(f"/{clip.id}")
    (sent,) = [c.body for c in bot.fake.calls_to("POST", rf"^/channels/{thread['id']}/messages$")
               if c.files]  # fmt: skip
    assert sent["nonce"] == f"animate-c-{job.id}" and sent["enforce_nonce"] is True

    statuses = [m for m in bot.fake.channel_messages(thread["id"]) if not m.files]
    (status,) = statuses
    assert status.content.startswith("✅ **OpenVideo** delivered · $0.20 charged")
    assert done.message_id is not None and done.message_id.endswith(f"/{status.id}")
    # Everything after the first answer went through the bot token, not the interaction's.
    posts = bot.fake.calls_to("POST", r"^/channels/\d+/messages$")
    assert posts and all(c.bot_auth for c in posts)
    reservation = await bot.app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "settled"
    assert reservation.settled_micros == 200_000


async def test_run_in_a_thread_uses_that_thread(bot: Bot) -> None:
    fake = bot.fake
    thread = fake.add_channel(name="ideas", type=11, parent_id=fake.channel_id)
    iid = bot.animate(channel=thread)
    job = await bot.started(iid)
    assert fake.threads() == [thread]  # no new thread
    assert (job.channel_id, job.thread_id) == (str(fake.channel_id), thread["id"])
    await bot.finish(job.id)
    (clip,) = fake.clips()
    assert clip.channel_id == int(thread["id"])


async def test_the_same_interaction_twice_makes_one_job(bot: Bot) -> None:
    att = bot.p.attachment(make_png())
    name, opts, resolved = bot.p.animate(att)
    payload = bot.p.command(name, opts, resolved)
    iid = bot.send(payload)
    job = await bot.started(iid)
    bot.fake.interactions[payload["token"]].responded = False  # let it be answered again
    bot.send(payload)
    await bot.fake.wait_for(lambda: len(callbacks(bot.fake, iid)) == 2)
    await bot.front.idle()
    assert [j.id for j in await bot.app.db.jobs.list_jobs()] == [job.id]
    assert len(await money_moved(bot.app)) == 1


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("bad duration", {"model": "sora-2", "duration": 7},
     "Duration 7 is not offered by sora-2: choose 4, 8, 12, 16 or 20. Nothing was charged."),
    ("unknown LoRA", {"model": "openvideo-lora", "loras": "omnift:0.5"},
     "Unknown LoRA 'omnift': did you mean 'omninft'?"),
    ("LoRA strength", {"model": "openvideo-lora", "loras": "omninft:lots"},
     "LoRA 'omninft' strength 'lots' is not a number: use 0 to 4. Nothing was charged."),
    ("no such model", {"model": "sora-3"}, "Unknown model 'sora-3'"),
    ("a seed the model does not take", {"model": "sora-2", "seed": 5}, "Sora-2 takes no seed"),
    ("a negative prompt on a model without one", {"negative_prompt": "blur"},
     "Openvideo takes no negative prompt"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "options", "says"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_invalid_options_are_one_ephemeral_sentence_and_cost_nothing(
    bot: Bot, why: str, options: dict[str, Any], says: str
) -> None:
    iid = bot.animate(**options)
    text = await bot.refusal(iid)
    assert text.startswith(says)
    assert text.endswith("Nothing was charged.") and text.count("\n") == 0
    await bot.front.idle()
    assert bot.fake.public_answer(iid) is None  # the placeholder was removed
    assert await money_moved(bot.app) == [] and await bot.app.db.jobs.list_jobs() == []


async def test_a_file_that_is_not_an_image_is_refused(bot: Bot) -> None:
    iid = bot.animate(image=b"%PDF-1.7 not a picture")
    text = await bot.refusal(iid)
    assert "PDF" in text and text.endswith("Nothing was charged.")
    assert await money_moved(bot.app) == []


async def test_over_the_cap_says_which_cap_what_is_left_and_when(make_bot: Any) -> None:
    async with make_bot(user_daily_cap_usd="0.30") as bot:
        first = bot.animate(duration=5, resolution="720p")
        await bot.started(first)
        second = bot.animate(duration=5, resolution="720p")
        text = await bot.refusal(second)
        assert text.startswith(
            "This clip costs $0.20, but only $0.10 is left of your daily limit of $0.30"
        )
        assert "It resets at" in text
        assert len(await money_moved(bot.app)) == 1


async def test_a_disabled_model_is_refused_with_how_to_enable_it(make_bot: Any) -> None:
    async with make_bot(price_overrides={}) as bot:  # wan-2.1 has no published price
        iid = bot.animate(model="wan-2.1")
        text = await bot.refusal(iid)
        assert "wan-2.1" in text and "PRICE_OVERRIDES" in text
        assert await money_moved(bot.app) == []


async def test_paused_server_refuses(bot: Bot) -> None:
    admin = Actor("discord", "900", f"discord:{bot.fake.guild_id}", admin=True)
    await AdminOps(bot.app.service).set_paused(admin, True)
    iid = bot.animate()
    assert (await bot.refusal(iid)).startswith("/animate is paused on this server")
    assert await money_moved(bot.app) == []


@pytest.mark.parametrize(
    ("lacking", "named"),
    [(ATTACH_FILES, "Attach Files"), (CREATE_PUBLIC_THREADS, "Create Public Threads")],
)
async def test_missing_bot_permissions_are_named_before_anything_is_held(
    bot: Bot, lacking: int, named: str
) -> None:
    bot.p.app_permissions &= ~lacking
    iid = bot.animate()
    text = await bot.refusal(iid)
    assert named in text and "Nothing was charged." in text
    (ack,) = callbacks(bot.fake, iid)
    assert ack["type"] == 4 and ack["data"]["flags"] == EPHEMERAL  # never deferred publicly
    assert await money_moved(bot.app) == [] and bot.fake.threads() == []


async def test_in_a_thread_the_bot_needs_no_thread_creation(bot: Bot) -> None:
    bot.p.app_permissions &= ~CREATE_PUBLIC_THREADS
    thread = bot.fake.add_channel(type=11, parent_id=bot.fake.channel_id)
    iid = bot.animate(channel=thread)
    await bot.started(iid)  # no refusal: the thread exists


async def test_autocomplete_offers_each_models_own_choices(bot: Bot) -> None:
    fake = bot.fake
    await AdminOps(bot.app.service).save_lora(
        Actor("discord", "900", f"discord:{fake.guild_id}", admin=True),
        "wobble", "https://loras.example/wobble.safetensors", 0.7,
    )  # fmt: skip

    async def choices(focused: str, typed: Any, **others: Any) -> list[Any]:
        payload = bot.p.autocomplete(focused, typed, **others)
        bot.send(payload)
        body = await fake.wait_for(lambda: fake.interactions[payload["token"]].callback)
        assert body["type"] == 8
        return [(c["name"], c["value"]) for c in body["data"]["choices"]]

    assert [v for _, v in await choices("duration", "", model="sora-2")] == [4, 8, 12, 16, 20]
    assert [v for _, v in await choices("resolution", "", model="wan-2.2-fast")] == ["480p"]
    keys = await choices("loras", "omninft:0.5, be", model="openvideo-lora")
    assert keys[0] == ("omninft:0.5, better_motion", "omninft:0.5, better_motion:1")
    assert await choices("loras", "", model="wan-2.2-fast") == [("wobble (saved, 0.7)", "wobble")]


async def test_models_usage_and_jobs(bot: Bot) -> None:
    fake = bot.fake
    iid = bot.animate(duration=5, resolution="720p")
    job = await bot.started(iid)
    await bot.finish(job.id)

    models = bot.send(bot.p.slash("models"))
    await fake.wait_for(lambda: len(fake.ephemeral_texts(models)) == 2)  # over 2,000 chars
    text = "\n".join(fake.ephemeral_texts(models))
    assert "**OpenVideo** (`openvideo`)" in text and "price 720p: 3 s $0.20" in text
    assert "price 720p: 5 s $0.45" in text  # wan-2.1, enabled by the test's price override

    usage = bot.send(bot.p.slash("usage"))
    await fake.wait_for(lambda: fake.ephemeral_texts(usage))
    (shown,) = [m for m in fake.messages.values() if m.ephemeral and m.files]
    assert shown.content.startswith("You today: $0.20 spent, $0.00 held")
    name, png = shown.files[0]
    assert name == "spend-30-days.png" and png.startswith(b"\x89PNG")

    jobs = bot.send(bot.p.slash("jobs"))
    (listed,) = await fake.wait_for(lambda: fake.ephemeral_texts(jobs))
    assert listed.startswith(f"`{job.id}` delivered · OpenVideo · $0.20 charged · [clip](<")


async def test_a_request_in_a_direct_message_is_refused(bot: Bot) -> None:
    att = bot.p.attachment(make_png())
    name, opts, resolved = bot.p.animate(att)
    payload = bot.p.command(name, opts, resolved)
    del payload["guild_id"], payload["guild"], payload["member"]
    payload["user"] = {"id": "111", "username": "m", "discriminator": "0", "avatar": None}
    payload["channel"] = {"id": str(bot.fake.snowflake()), "type": 1}
    iid = bot.send(payload)
    text = await bot.refusal(iid)
    assert "server channel" in text
    assert THREAD_TYPES and MEMBER_PERMISSIONS  # (imported for the payload helpers)


async def test_commands_sync_to_the_listed_servers_only(make_bot: Any, fake: FakeDiscord) -> None:
    async with make_bot(discord_guild_ids=(fake.guild_id,)):
        assert "global" not in fake.synced
        names = sorted(c["name"] for c in fake.synced[str(fake.guild_id)])
        assert names == ["Animate this image", "animate", "animate-admin", "jobs", "models",
                         "usage"]  # fmt: skip


async def test_last_image_where_the_model_takes_one(bot: Bot) -> None:
    last = bot.p.attachment(make_png(400, 300), name="end.png")
    refused = bot.animate(last_image=last)
    assert (await bot.refusal(refused)).startswith("Openvideo takes no last image")

    last = bot.p.attachment(make_png(400, 300), name="end.png")
    job = await bot.started(bot.animate(model="wan-2.2-fast", last_image=last))
    kept = await bot.app.db.jobs.get_input(job.id, "last_image")
    assert kept is not None and (kept.width, kept.height) == (400, 300)
    assert job.params["last_image"] == last["url"]
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED
