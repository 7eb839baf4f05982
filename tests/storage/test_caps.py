"""Each cap refuses with the right Refusal and a message a person understands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage import Database, IdempotencyConflict, LimitDefaults, Limits, QuotaExceeded, Scopes
from tests.fixtures_db import FakeClock

U = Scopes("cli:alice", "discord:g")


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


async def refused(db: Database, key: str, scopes: Scopes, amount: int) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as info:
        await db.ledger.reserve(key, scopes, amount)
    return info.value


async def test_user_daily_cap_message_and_recorded_refusal(open_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(defaults=LimitDefaults(user=Limits(daily_micros=5_000_000)))
    for i in range(12):
        await db.ledger.reserve(f"k{i}", U, 400_000)
    exc = await refused(db, "k12", U, 400_000)
    r = exc.refusal
    assert (r.scope_kind, r.scope_id, r.cap, r.limit, r.used, r.remaining, r.unit) == (
        "user", U.user_id, "daily", 5_000_000, 4_800_000, 200_000, "micros",
    )  # fmt: skip
    assert r.resets_at == ts(2026, 11, 23)
    assert r.message() == (
        "This clip costs $0.40, but only $0.20 is left of your daily limit of $5.00 "
        "($4.80 used). It resets at 2026-11-23 00:00 UTC."
    )
    # a fitting amount still passes; the refused key keeps its refusal
    await db.ledger.reserve("small", U, 200_000)
    again = await refused(db, "k12", U, 400_000)
    assert again.refusal == r  # same outcome, even though the numbers moved
    with pytest.raises(IdempotencyConflict):
        await db.ledger.reserve("k12", U, 100)
    assert await db.ledger.get("k12") is None
    assert await db.ledger.get_refusal("k12") == r
    kinds = [e.kind for e in await db.ledger.entries() if e.key == "k12"]
    assert kinds == ["refuse"]
    assert await db.ledger.check_books() == []


async def test_server_and_global_money_caps(open_db) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(
        defaults=LimitDefaults(
            server=Limits(monthly_micros=1_000_000), global_=Limits(daily_micros=3_000_000)
        )
    )
    await db.ledger.reserve("a", Scopes("u1", "g"), 700_000)
    exc = await refused(db, "b", Scopes("u2", "g"), 400_000)
    assert (exc.refusal.scope_kind, exc.refusal.cap) == ("server", "monthly")
    assert "left of this server's monthly limit of $1.00" in exc.refusal.message()
    assert exc.refusal.resets_at == ts(2026, 12, 1)
    await db.ledger.reserve("c", Scopes("u2", "other"), 900_000)
    await db.ledger.reserve("d", Scopes("u3"), 1_000_000)
    exc = await refused(db, "e", Scopes("u4"), 500_000)
    assert (exc.refusal.scope_kind, exc.refusal.scope_id, exc.refusal.cap) == (
        "global",
        "*",
        "daily",
    )
    assert "left of the bot's daily limit of $3.00 ($2.60 used)" in exc.refusal.message()
    # the refused reservations left no trace in any counter
    assert await db.ledger.check_books() == []


async def test_concurrent_cap_frees_on_settle_or_void(open_db) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(
        defaults=LimitDefaults(user=Limits(concurrent_jobs=2), server=Limits(concurrent_jobs=3))
    )
    await db.ledger.reserve("a", U, 1)
    await db.ledger.reserve("b", U, 1)
    exc = await refused(db, "c", U, 1)
    assert (exc.refusal.cap, exc.refusal.used, exc.refusal.limit, exc.refusal.resets_at) == (
        "concurrent_jobs", 2, 2, None,
    )  # fmt: skip
    assert exc.refusal.message() == (
        "You already have 2 clips rendering (the limit is 2); try again when one finishes."
    )
    await db.ledger.settle("a")
    await db.ledger.reserve("c2", U, 1)
    await db.ledger.reserve("d", Scopes("bob", "discord:g"), 1)
    exc = await refused(db, "e", Scopes("carol", "discord:g"), 1)
    assert exc.refusal.scope_kind == "server"
    assert exc.refusal.message().startswith("This server already has 3 clips rendering")
    await db.ledger.void("d")
    await db.ledger.reserve("e2", Scopes("carol", "discord:g"), 1)


async def test_jobs_per_hour_sliding_window(open_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(defaults=LimitDefaults(user=Limits(jobs_per_hour=3)))
    t0 = clock.now
    await db.ledger.reserve("a", U, 1)
    clock.advance(600)
    await db.ledger.reserve("b", U, 1)
    await db.ledger.settle("b")
    clock.advance(600)
    await db.ledger.reserve("c", U, 1)
    await db.ledger.void("c")  # voided reservations do not count
    await db.ledger.reserve("d", U, 1)
    exc = await refused(db, "e", U, 1)
    assert (exc.refusal.cap, exc.refusal.used, exc.refusal.limit) == ("jobs_per_hour", 3, 3)
    assert exc.refusal.resets_at == t0 + 3600
    assert exc.refusal.message() == (
        "Your hourly limit of 3 clips is reached: 3 started in the last hour. "
        "It resets at 13:00 UTC."
    )
    clock.set(t0 + 3599.5)  # "a" is still inside the window
    await refused(db, "f", U, 1)
    clock.set(exc.refusal.resets_at)  # the advertised reset time is when a slot frees
    await db.ledger.reserve("g", U, 1)


async def test_day_and_month_boundaries(open_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(
        defaults=LimitDefaults(user=Limits(daily_micros=1_000, monthly_micros=2_500))
    )
    clock.set(ts(2026, 11, 30, 23, 59, 59))
    await db.ledger.reserve("late", U, 1_000)
    await refused(db, "late2", U, 1)
    clock.set(ts(2026, 12, 1, 0, 0, 0))  # new day AND new month
    await db.ledger.reserve("early", U, 1_000)
    # the November hold is voided after midnight: it frees November, not December
    await db.ledger.void("late")
    exc = await refused(db, "early2", U, 1)
    assert (exc.refusal.cap, exc.refusal.used) == ("daily", 1_000)
    usage = {u.cap: u for u in await db.ledger.usage(U) if u.scope_kind == "user"}
    assert usage["daily"].used == 1_000 and usage["monthly"].used == 1_000
    assert usage["monthly"].resets_at == ts(2027, 1, 1)
    # month cap: days 1 and 2 fill December's 2,500
    clock.set(ts(2026, 12, 2, 8))
    await db.ledger.reserve("d2", U, 1_000)
    clock.set(ts(2026, 12, 3, 8))
    exc = await refused(db, "d3", U, 1_000)
    assert (exc.refusal.cap, exc.refusal.used, exc.refusal.remaining) == ("monthly", 2_000, 500)
    assert exc.refusal.resets_at == ts(2027, 1, 1)
    await db.ledger.reserve("d3b", U, 500)
    assert await db.ledger.check_books() == []


async def test_override_none_lifts_a_default_cap(open_db) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(defaults=LimitDefaults(user=Limits(daily_micros=100)))
    await refused(db, "a", U, 101)
    await db.ledger.set_limits("user", U.user_id, daily_micros=None)
    await db.ledger.reserve("b", U, 10_000)
    await db.ledger.set_limits("user", U.user_id, daily_micros="default")
    await refused(db, "c", U, 1)
    await db.ledger.set_limits("user", U.user_id, daily_micros=20_000)
    await db.ledger.reserve("d", U, 10_000)
    await refused(db, "e", U, 1)


def test_refusal_formats_fractional_dollars() -> None:
    from storage import Refusal

    r = Refusal("user", "u", "daily", 1_234, 1_000, 500, 234, "micros", None)
    assert r.message() == (
        "This clip costs $0.0005, but only $0.000234 is left of your daily limit of $0.001234 "
        "($0.001 used)."
    )
    assert Refusal.from_json(r.to_json()) == r
