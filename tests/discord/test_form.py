"""The message context menu "Animate this image": a form (modal), then the /animate path.
The form's id names the message, so a submit works on any process, after a restart too."""

from __future__ import annotations

from typing import Any

from storage import JobStatus
from tests.discord.conftest import Bot
from tests.discord.helpers import money_moved
from tests.fixtures_sim import make_png


async def open_form(bot: Bot, message_id: int) -> dict[str, Any]:
    msg = bot.fake.messages[message_id]
    payload = bot.p.context_menu(bot.fake.message_json(msg))
    bot.send(payload)
    body = await bot.fake.wait_for(lambda: bot.fake.interactions[payload["token"]].callback)
    assert isinstance(body, dict)
    return body


async def test_the_form_animates_the_messages_image(bot: Bot) -> None:
    posted = bot.fake.user_message(bot.fake.channel_id, "look", files=[("cat.png", make_png())])
    body = await open_form(bot, posted.id)
    assert body["type"] == 9  # a modal
    form = body["data"]
    assert form["custom_id"] == f"animate-form:{bot.fake.channel_id}:{posted.id}"
    fields = [row["components"][0]["custom_id"] for row in form["components"]]
    assert fields == ["prompt", "model", "duration", "resolution", "loras"]

    iid = bot.send(bot.p.form_submit(form["custom_id"], {
        "prompt": "the cat blinks", "model": "openvideo", "duration": "5",
        "resolution": "720p", "loras": "",
    }))  # fmt: skip
    job = await bot.started(iid)
    assert job.prompt == "the cat blinks" and job.params["resolution"] == "720p"
    assert job.image_ref.endswith(f"/cdn/{posted.id}-cat.png")
    done = await bot.finish(job.id)
    assert done.status is JobStatus.DELIVERED and len(bot.fake.clips()) == 1


async def test_a_form_opened_before_a_restart_is_still_understood(make_bot: Any) -> None:
    async with make_bot(owner="first") as bot:
        posted = bot.fake.user_message(bot.fake.channel_id, "", files=[("a.png", make_png())])
        form = (await open_form(bot, posted.id))["data"]
    async with make_bot(owner="second") as bot:
        iid = bot.send(bot.p.form_submit(form["custom_id"], {"prompt": "waves", "model": "sora-2"}))
        job = await bot.started(iid)
        assert job.model == "sora-2"


async def test_a_message_without_an_image_gets_no_form(bot: Bot) -> None:
    posted = bot.fake.user_message(bot.fake.channel_id, "just words")
    body = await open_form(bot, posted.id)
    assert body["type"] == 4 and body["data"]["flags"] == 64
    assert body["data"]["content"].startswith("That message has no image to animate")


async def test_the_image_deleted_before_submit_is_a_refusal(bot: Bot) -> None:
    posted = bot.fake.user_message(bot.fake.channel_id, "", files=[("a.png", make_png())])
    form = (await open_form(bot, posted.id))["data"]
    posted.deleted = True
    iid = bot.send(bot.p.form_submit(form["custom_id"], {"prompt": "x", "model": "openvideo"}))
    text = await bot.refusal(iid)
    assert text.startswith("The message with the image was deleted")
    assert await money_moved(bot.app) == []


async def test_a_bad_form_value_is_refused(bot: Bot) -> None:
    posted = bot.fake.user_message(bot.fake.channel_id, "", files=[("a.png", make_png())])
    form = (await open_form(bot, posted.id))["data"]
    iid = bot.send(bot.p.form_submit(form["custom_id"], {
        "prompt": "x", "model": "openvideo", "duration": "two",
    }))  # fmt: skip
    text = await bot.refusal(iid)
    assert "duration" in text.lower() and text.endswith("Nothing was charged.")
