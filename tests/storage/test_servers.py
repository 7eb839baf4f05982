"""Chat servers' settings (pause, saved LoRAs, role caps) and jobs' stored input images."""

from __future__ import annotations

from typing import Any

import pytest

from storage import (
    Database,
    Limits,
    NewJob,
    QuotaExceeded,
    Scopes,
    StoredImage,
)
from tests.fixtures_db import FakeClock

SERVER = "discord:1"


async def test_pause_is_per_server_and_survives_reopen(db: Database, open_db: Any) -> None:
    assert not await db.servers.is_paused(SERVER)
    await db.servers.set_paused(SERVER, True, by="discord:9")
    assert await db.servers.is_paused(SERVER)
    assert not await db.servers.is_paused("discord:2")
    other = await open_db()
    assert await other.servers.is_paused(SERVER)
    await other.servers.set_paused(SERVER, False, by="discord:9")
    assert not await db.servers.is_paused(SERVER)


async def test_saved_loras_are_named_case_insensitively_and_replaceable(db: Database) -> None:
    await db.servers.save_lora(SERVER, "Wobble", "https://x.example/w.safetensors", 0.7, by="a")
    await db.servers.save_lora(SERVER, "zoom", "https://x.example/z.safetensors", 1.0, by="a")
    await db.servers.save_lora(SERVER, "WOBBLE", "https://x.example/w2.safetensors", 0.5, by="b")
    loras = await db.servers.loras(SERVER)
    assert [(lo.name, lo.url, lo.scale) for lo in loras] == [
        ("wobble", "https://x.example/w2.safetensors", 0.5),
        ("zoom", "https://x.example/z.safetensors", 1.0),
    ]
    assert await db.servers.loras("discord:2") == []
    assert await db.servers.delete_lora(SERVER, "Zoom")
    assert not await db.servers.delete_lora(SERVER, "zoom")
    assert [lo.name for lo in await db.servers.loras(SERVER)] == ["wobble"]


async def test_role_caps_merge_to_the_most_generous_per_cap(db: Database) -> None:
    base = Limits(daily_micros=1_000_000, monthly_micros=5_000_000, concurrent_jobs=2)
    assert await db.servers.user_defaults_for(SERVER, ["r1"], base) is None
    await db.servers.set_role_limits(SERVER, "r1", daily_micros=3_000_000, concurrent_jobs=1)
    await db.servers.set_role_limits(SERVER, "r2", daily_micros=2_000_000, concurrent_jobs=4)
    await db.servers.set_role_limits(SERVER, "r3", monthly_micros=None)  # no monthly cap
    merged = await db.servers.user_defaults_for(SERVER, ["r1", "r2", "r3", "r9"], base)
    assert merged == Limits(
        daily_micros=3_000_000, monthly_micros=None, concurrent_jobs=4, jobs_per_hour=None
    )
    only_r2 = await db.servers.user_defaults_for(SERVER, ["r2"], base)
    assert only_r2 == Limits(daily_micros=2_000_000, monthly_micros=5_000_000, concurrent_jobs=4)
    assert await db.servers.set_role_limits(SERVER, "r2", daily_micros="default") == {
        "concurrent_jobs": 4
    }
    assert (await db.servers.role_limits(SERVER)).keys() == {"r1", "r2", "r3"}
    with pytest.raises(ValueError, match="unknown cap"):
        await db.servers.set_role_limits(SERVER, "r1", weekly=1)


async def test_role_defaults_apply_unless_the_member_has_own_caps(
    db: Database, clock: FakeClock
) -> None:
    role_caps = Limits(daily_micros=300_000)
    scopes = Scopes("discord:u1", SERVER, user_defaults=role_caps)
    await db.ledger.reserve("k1", scopes, 200_000)
    with pytest.raises(QuotaExceeded) as refused:
        await db.ledger.reserve("k2", scopes, 200_000)
    assert refused.value.refusal.limit == 300_000
    # the member's own override wins over the role caps
    await db.ledger.set_limits("user", "discord:u1", daily_micros=1_000_000)
    await db.ledger.reserve("k3", scopes, 200_000)
    usage = await db.ledger.usage(scopes)
    daily = next(u for u in usage if u.scope_kind == "user" and u.cap == "daily")
    assert daily.limit == 1_000_000 and daily.used == 400_000


def _new_job(job_id: str) -> NewJob:
    return NewJob(
        id=job_id, platform="cli", event_id=job_id, user_id="cli:a", server_id=None,
        model="openvideo", provider="wavespeed", params={}, prompt="p", image_ref="upload",
        cost_micros=100_000,
    )  # fmt: skip


async def test_input_images_are_stored_with_the_job_and_purged_by_age(
    db: Database, clock: FakeClock
) -> None:
    png = StoredImage(b"\x89PNG" + bytes(range(256)) * 40, "image/png", "in.png", 320, 240)
    last = StoredImage(b"\xff\xd8jpeg", "image/jpeg", "last.jpg", 320, 240)
    await db.jobs.create_reserved(
        _new_job("j1"), Scopes("cli:a"), ledger_key="k1", inputs={"image": png, "last_image": last}
    )
    assert await db.jobs.get_input("j1") == png
    assert await db.jobs.get_input("j1", "last_image") == last
    clock.advance(3600)
    await db.jobs.create_reserved(
        _new_job("j2"), Scopes("cli:a"), ledger_key="k2", inputs={"image": png}
    )
    assert await db.jobs.purge_inputs(older_than=clock() - 60) == 2
    assert await db.jobs.get_input("j1") is None
    assert await db.jobs.get_input("j2") == png


async def test_a_refused_job_keeps_no_input(db: Database) -> None:
    await db.ledger.set_limits("user", "cli:a", daily_micros=50_000)
    png = StoredImage(b"\x89PNG....", "image/png", "in.png", 320, 240)
    with pytest.raises(QuotaExceeded):
        await db.jobs.create_reserved(
            _new_job("j1"), Scopes("cli:a"), ledger_key="k1", inputs={"image": png}
        )
    assert await db.jobs.get_input("j1") is None
