"""/animate-admin through discord.py: only Manage Server may use it (re-checked in code),
role caps (the most generous of a member's roles; @everyone for all), member caps, saved
LoRAs used by name, the spend report as CSV, pause and resume."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.discord.conftest import Bot
from tests.discord.helpers import money_moved
from tests.discord.payloads import MANAGE_GUILD, MEMBER_PERMISSIONS, ROLE, STRING, USER

ADMIN = {"user_id": "900", "permissions": MEMBER_PERMISSIONS | MANAGE_GUILD}
ARTISTS = "5550001"


def role(role_id: str, name: str) -> dict[str, Any]:
    return {"id": role_id, "name": name, "color": 0, "hoist": False, "position": 1,
            "permissions": "0", "managed": False, "mentionable": True, "flags": 0}  # fmt: skip


def strings(**values: str) -> list[dict[str, Any]]:
    return [{"name": k, "type": STRING, "value": v} for k, v in values.items()]


async def admin(bot: Bot, group: str | None, sub: str, options: list[dict[str, Any]] | None = None,
                resolved: dict[str, Any] | None = None, **who: Any) -> str:  # fmt: skip
    people = who or ADMIN
    return await bot.answer(bot.send(bot.p.admin(group, sub, options, resolved, **people)))


async def set_role_caps(bot: Bot, role_id: str, **caps: str) -> str:
    options = [{"name": "role", "type": ROLE, "value": role_id}, *strings(**caps)]
    return await admin(bot, "caps", "role", options, {"roles": {role_id: role(role_id, "r")}})


async def test_only_manage_server_may_change_anything(bot: Bot) -> None:
    said = await admin(bot, None, "pause", user_id="111")
    assert said == "Only the server's administrators can change the bot's settings here."
    assert not await bot.app.db.servers.is_paused(f"discord:{bot.fake.guild_id}")
    # Discord shows the command only to Manage Server by default: a UI default, synced.
    (group,) = [c for c in bot.fake.synced["global"] if c["name"] == "animate-admin"]
    assert str(group["default_member_permissions"]) == str(MANAGE_GUILD)


async def test_role_caps_apply_to_members_with_the_role(make_bot: Any) -> None:
    async with make_bot(user_daily_cap_usd="0.10") as bot:
        said = await set_role_caps(bot, ARTISTS, daily="0.20")
        assert said == f"Role <@&{ARTISTS}> now sets: daily $0.20."
        for _ in range(2):
            await bot.started(bot.animate(roles=(ARTISTS,)))
        third = bot.animate(roles=(ARTISTS,))
        assert "daily limit of $0.20" in await bot.refusal(third)
        # Someone without the role has the operator's default ($0.10).
        await bot.started(bot.animate(user_id="222"))
        assert "daily limit of $0.10" in await bot.refusal(bot.animate(user_id="222"))

        shown = await admin(bot, "caps", "show")
        assert f"Role <@&{ARTISTS}>: daily $0.20." in shown


async def test_everyone_role_caps_and_member_caps(make_bot: Any) -> None:
    async with make_bot(user_daily_cap_usd="0.10") as bot:
        everyone = str(bot.fake.guild_id)  # @everyone's id is the server's
        await set_role_caps(bot, everyone, daily="0.20")
        await bot.started(bot.animate(user_id="333"))
        await bot.started(bot.animate(user_id="333"))  # $0.20 under @everyone's cap
        assert "daily limit of $0.20" in await bot.refusal(bot.animate(user_id="333"))

        options = [{"name": "member", "type": USER, "value": "333"}, *strings(daily="1")]
        resolved = {"users": {"333": {"id": "333", "username": "m", "discriminator": "0",
                                      "avatar": None}}}  # fmt: skip
        said = await admin(bot, "caps", "member", options, resolved)
        assert said.startswith("Member <@333> now has their own caps: daily $1.00.")
        await bot.started(bot.animate(user_id="333"))


async def test_bad_cap_values_are_one_sentence(bot: Bot) -> None:
    said = await admin(bot, "caps", "server", strings(daily="lots"))
    assert said.startswith("The daily cap 'lots' is not an amount")
    said = await admin(bot, "caps", "server", strings(daily="12.5"))
    assert said.startswith("Server caps are now: daily $12.50, monthly no cap")


async def test_saved_loras_are_used_by_name(bot: Bot) -> None:
    options = strings(name="Wobble", url="https://loras.example/wobble.safetensors")
    options.append({"name": "strength", "type": 10, "value": 0.7})
    said = await admin(bot, "lora", "save", options)
    assert said == "Saved LoRA 'wobble' (strength 0.7): https://loras.example/wobble.safetensors"
    listed = await admin(bot, "lora", "list", user_id="111")  # anyone may see the list
    assert listed.startswith("`wobble` (strength 0.7)")
    job = await bot.started(bot.animate(model="wan-2.2-fast", loras="wobble"))
    assert job.params["loras"] == [
        {"path": "https://loras.example/wobble.safetensors", "scale": 0.7}
    ]
    said = await admin(bot, "lora", "delete", strings(name="wobble"))
    assert said == "Deleted the saved LoRA 'wobble'."


async def test_pause_resume_and_the_spend_report(bot: Bot) -> None:
    assert (await admin(bot, None, "pause")).startswith("/animate is paused on this server")
    assert (await bot.refusal(bot.animate())).startswith("/animate is paused")
    assert await money_moved(bot.app) == []
    assert (await admin(bot, None, "resume")) == "/animate is running again on this server."

    job = await bot.started(bot.animate(duration=5, resolution="720p"))
    await bot.finish(job.id)
    iid = bot.send(bot.p.admin(None, "report", [{"name": "days", "type": 4, "value": 7}], **ADMIN))
    said = await bot.answer(iid)
    assert said == "Spend over the last 7 days: $0.20 in 1 rows (day, member, model)."
    (sent,) = [m for m in bot.fake.messages.values() if m.ephemeral and m.files]
    name, data = sent.files[0]
    assert name.startswith(f"animate-spend-{bot.fake.guild_id}-") and name.endswith("-7d.csv")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [(r["member"], r["model"], r["spent_usd"]) for r in rows] == [
        ("discord:111", "openvideo", "0.20")
    ]
