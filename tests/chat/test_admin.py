"""/animate-admin operations, /usage and /jobs, as both chat front doors use them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.app import App
from bot.chat.actions import Actor
from bot.chat.admin import AdminOps, parse_caps, parse_money_cap
from bot.chat.chart import spend_chart
from bot.chat.markup import DISCORD
from bot.chat.usage import recent_jobs, usage_view
from bot.cli.jobs import follow
from bot.errors import NotAllowed, QuotaRefused, RequestRefused
from tests.chat.test_delivery import chat_request

ADMIN = Actor("discord", "900", "discord:g1", moderator=True, admin=True)
MEMBER = Actor("discord", "111", "discord:g1", role_ids=("artists",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5", 5_000_000), ("$2.50", 2_500_000), ("none", None), ("default", "default"), ("0", 0)],
)
def test_money_caps_are_written_in_dollars(text: str, expected: Any) -> None:
    assert parse_money_cap(text, what="daily") == expected


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ({"daily": "abc"}, "is not an amount"),
        ({"daily": "99999999999999999999"}, "between $0 and $1,000,000"),
        ({"daily": "-1"}, "between $0"),
        ({"monthly": "0.0000001"}, "finer than a millionth"),
        ({"per_hour": "-3"}, "whole number from 0 to 100,000"),
        ({"concurrent": "1e9"}, "whole number"),
        ({}, "at least one cap"),
    ],
)
def test_bad_caps_are_one_sentence(caps: dict[str, str], message: str) -> None:
    with pytest.raises(RequestRefused, match=message.replace("$", r"\$")):
        parse_caps(**caps)


async def test_only_admins_change_settings(chat_app: App) -> None:
    ops = AdminOps(chat_app.service)
    for call in (
        ops.show_caps(MEMBER),
        ops.set_caps(MEMBER, "server", None, {"daily_micros": 1}),
        ops.save_lora(MEMBER, "x", "https://x/y", 1.0),
        ops.set_paused(MEMBER, True),
        ops.report(MEMBER, days=30, now=0),
    ):
        with pytest.raises(NotAllowed, match="administrators"):
            await call
    assert await chat_app.db.servers.is_paused("discord:g1") is False


async def test_role_and_member_caps_apply_to_the_next_clip(
    make_chat_app: Any, png_file: Path
) -> None:
    async with make_chat_app(user_daily_cap_usd="0.20") as app:
        ops = AdminOps(app.service)
        said = await ops.set_caps(ADMIN, "role", "artists", parse_caps(daily="0.40"))
        assert said == "Role artists now sets: daily $0.40."
        req = chat_request(png_file, role_ids=("artists",))
        await app.service.animate(req)
        await app.service.animate(chat_request(png_file, role_ids=("artists",)))
        with pytest.raises(QuotaRefused, match=r"daily limit of \$0.40"):
            await app.service.animate(chat_request(png_file, role_ids=("artists",)))
        said = await ops.set_caps(ADMIN, "member", "111", parse_caps(daily="1"))
        assert said.startswith("Member 111 now has their own caps: daily $1.00.")
        await app.service.animate(chat_request(png_file, role_ids=("artists",)))
        lines = await ops.show_caps(ADMIN)
        assert "Role artists: daily $0.40." in lines


async def test_saved_loras_are_checked(chat_app: App) -> None:
    ops = AdminOps(chat_app.service)
    saved = await ops.save_lora(ADMIN, "Wobble", "https://loras.example/w.safetensors", 0.7)
    assert saved.name == "wobble"
    for name, url, scale, message in (
        ("bad name!", "https://x/y", 1.0, "not usable"),
        ("ok", "ftp://x/y", 1.0, "not an http"),
        ("ok", "https://x/y", 5.0, "out of range"),
    ):
        with pytest.raises(RequestRefused, match=message):
            await ops.save_lora(ADMIN, name, url, scale)
    assert [lo.name for lo in await ops.list_loras(MEMBER)] == ["wobble"]
    assert await ops.delete_lora(ADMIN, "WOBBLE") == "Deleted the saved LoRA 'wobble'."
    with pytest.raises(RequestRefused, match="no saved LoRA"):
        await ops.delete_lora(ADMIN, "wobble")


async def test_pause_and_resume(chat_app: App, png_file: Path) -> None:
    ops = AdminOps(chat_app.service)
    assert "paused" in await ops.set_paused(ADMIN, True)
    with pytest.raises(RequestRefused, match="paused on this server"):
        await chat_app.service.animate(chat_request(png_file))
    assert "running again" in await ops.set_paused(ADMIN, False)
    await chat_app.service.animate(chat_request(png_file))


async def test_spend_report_by_day_member_and_model(chat_app: App, png_file: Path) -> None:
    for user, model, options in (
        ("111", "openvideo", {"duration": 5, "resolution": "720p"}),
        ("111", "sora-2", {"duration": 4}),
        ("222", "openvideo", {"duration": 5, "resolution": "720p"}),
    ):
        sub = await chat_app.service.animate(
            chat_request(png_file, user_id=user, model=model, options=options)
        )
        await follow(chat_app, sub.job.id)
    await chat_app.service.animate(chat_request(png_file, server_id="g2"))  # other server
    report = await AdminOps(chat_app.service).report(ADMIN, days=30, now=chat_app.service.clock())
    rows = list(csv.DictReader(io.StringIO(report.data.decode())))
    assert [(r["member"], r["model"], r["clips"], r["spent_usd"]) for r in rows] == [
        ("discord:111", "openvideo", "1", "0.20"),
        ("discord:111", "sora-2", "1", "0.40"),
        ("discord:222", "openvideo", "1", "0.20"),
    ]
    assert report.total_micros == 800_000 and report.filename.endswith("-30d.csv")
    with pytest.raises(RequestRefused, match="1 to 366 days"):
        await AdminOps(chat_app.service).report(ADMIN, days=99999, now=0)


async def test_usage_shows_every_cap_and_a_chart(make_chat_app: Any, png_file: Path) -> None:
    async with make_chat_app(user_daily_cap_usd="1", user_concurrent_jobs=2) as app:
        sub = await app.service.animate(chat_request(png_file))
        await follow(app, sub.job.id)
        await app.service.reserve(chat_request(png_file))  # one held
        view = await usage_view(app.service, MEMBER, DISCORD, now=app.service.clock())
        text = view.text()
        assert "You today: $0.20 spent, $0.20 held, **$0.60** left of $1.00; resets" in text
        assert "You: 1 of 2 rendering at once" in text
        assert "This server today" in text
        assert len(view.daily_spend) == 30 and view.daily_spend[-1][1] == 200_000
        png = spend_chart(view.daily_spend)
        with Image.open(io.BytesIO(png)) as img:
            assert img.format == "PNG" and img.size == (600, 220)
        lines = await recent_jobs(app.service, MEMBER, DISCORD)
        assert len(lines) == 2
        assert "queued · OpenVideo · $0.20 held" in lines[0]
        assert "delivered · OpenVideo · $0.20 charged" in lines[1]
