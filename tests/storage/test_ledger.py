"""Ledger unit tests: reserve/settle/void, idempotency, limits, reports, export."""

from __future__ import annotations

import csv
import io

import pytest

from storage import (
    Database,
    IdempotencyConflict,
    InvalidLedgerTransition,
    LimitDefaults,
    Limits,
    Scopes,
    UnknownReservation,
)
from tests.fixtures_db import FakeClock

U = Scopes("cli:alice", "discord:guild1")


async def books_balance(db: Database) -> None:
    assert await db.ledger.check_books() == []


async def test_reserve_settle_void_roundtrip(db: Database, clock: FakeClock) -> None:
    r = await db.ledger.reserve("k1", U, 400_000, model="wan", note="job 1")
    assert (r.status, r.amount_micros, r.settled_micros, r.model) == ("held", 400_000, 0, "wan")
    assert r.created_at == clock.now
    clock.advance(5)
    s = await db.ledger.settle("k1", 300_000, note="done")
    assert (s.status, s.settled_micros, s.updated_at) == ("settled", 300_000, clock.now)
    await db.ledger.reserve("k2", U, 100_000)
    v = await db.ledger.void("k2", note="provider failed")
    assert v.status == "voided"
    got = await db.ledger.get("k1")
    assert got is not None and got.status == "settled" and got.settled_micros == 300_000
    assert await db.ledger.get("nope") is None
    kinds = [(e.key, e.kind, e.amount_micros) for e in await db.ledger.entries()]
    assert kinds == [
        ("k1", "reserve", 400_000),
        ("k1", "settle", 300_000),
        ("k2", "reserve", 100_000),
        ("k2", "void", 100_000),
    ]
    await books_balance(db)


async def test_settle_defaults_to_held_amount_and_repeats(db: Database) -> None:
    await db.ledger.reserve("k", U, 250_000)
    first = await db.ledger.settle("k")
    assert first.settled_micros == 250_000
    assert await db.ledger.settle("k") == first
    assert await db.ledger.settle("k", 250_000) == first
    with pytest.raises(IdempotencyConflict):
        await db.ledger.settle("k", 100_000)
    with pytest.raises(InvalidLedgerTransition):
        await db.ledger.void("k")
    assert sum(e.kind == "settle" for e in await db.ledger.entries()) == 1
    await books_balance(db)


async def test_settle_more_than_held_and_unknown_keys(db: Database) -> None:
    await db.ledger.reserve("k", U, 100)
    with pytest.raises(InvalidLedgerTransition, match="only"):
        await db.ledger.settle("k", 101)
    with pytest.raises(UnknownReservation):
        await db.ledger.settle("missing")
    with pytest.raises(UnknownReservation):
        await db.ledger.void("missing")
    assert (await db.ledger.void("k")).status == "voided"
    assert (await db.ledger.void("k")).status == "voided"  # idempotent
    with pytest.raises(InvalidLedgerTransition, match="voided"):
        await db.ledger.settle("k")
    await books_balance(db)


async def test_repeat_reserve_same_and_conflicting(db: Database) -> None:
    first = await db.ledger.reserve("k", U, 100_000, model="m")
    assert await db.ledger.reserve("k", U, 100_000, model="m") == first
    with pytest.raises(IdempotencyConflict):
        await db.ledger.reserve("k", U, 100_001)
    with pytest.raises(IdempotencyConflict):
        await db.ledger.reserve("k", Scopes("cli:bob", U.server_id), 100_000)
    with pytest.raises(IdempotencyConflict):
        await db.ledger.reserve("k", Scopes(U.user_id), 100_000)
    await db.ledger.settle("k")
    again = await db.ledger.reserve("k", U, 100_000, model="m")
    assert again.status == "settled"
    assert sum(e.kind == "reserve" for e in await db.ledger.entries()) == 1
    await books_balance(db)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
async def test_reserve_rejects_bad_amounts(db: Database, bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        await db.ledger.reserve("k", U, bad)  # type: ignore[arg-type]
    assert await db.ledger.entries() == []


async def test_limits_override_none_and_default(open_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    defaults = LimitDefaults(
        user=Limits(daily_micros=5_000_000, monthly_micros=50_000_000, concurrent_jobs=2),
        server=Limits(daily_micros=50_000_000),
    )
    db = await open_db(defaults=defaults)
    assert await db.ledger.get_limits("user", "u") == defaults.user
    got = await db.ledger.set_limits("user", "u", daily_micros=1_000_000, concurrent_jobs=None)
    assert got == Limits(daily_micros=1_000_000, monthly_micros=50_000_000, concurrent_jobs=None)
    assert await db.ledger.get_limits("user", "other") == defaults.user
    got = await db.ledger.set_limits("user", "u", daily="default", jobs_per_hour=7)
    assert got == Limits(5_000_000, 50_000_000, None, 7)
    assert (await db.ledger.set_limits("global", "*", monthly_micros=9)).monthly_micros == 9
    # a second Database on the same URL sees the override: it lives in the DB
    other = await open_db(defaults=defaults)
    assert (await other.ledger.get_limits("user", "u")).jobs_per_hour == 7
    with pytest.raises(ValueError, match="global scope id"):
        await db.ledger.set_limits("global", "x", daily_micros=1)
    with pytest.raises(ValueError, match="unknown cap"):
        await db.ledger.set_limits("user", "u", weekly=1)
    with pytest.raises(ValueError, match="scope_kind"):
        await db.ledger.get_limits("team", "x")
    with pytest.raises(ValueError, match=">= 0"):
        await db.ledger.set_limits("user", "u", daily_micros=-5)


async def test_reports_and_csv(db: Database, clock: FakeClock) -> None:
    day1 = clock.now
    await db.ledger.reserve("a", U, 400_000, model="wan")
    await db.ledger.settle("a", 300_000)
    await db.ledger.reserve("b", Scopes("cli:bob"), 200_000, model="kling")
    await db.ledger.settle("b")
    await db.ledger.reserve("c", U, 999, model="wan")  # held: not spend
    clock.advance(86400)
    await db.ledger.reserve("d", U, 100_000, model="wan")
    await db.ledger.settle("d")
    await db.ledger.reserve("e", U, 50_000, model="wan")
    await db.ledger.void("e")
    until = clock.now + 1
    assert await db.ledger.spend_by_model(since=day1 - 1, until=until) == {
        "kling": 200_000,
        "wan": 400_000,
    }
    assert await db.ledger.spend_by_model(since=day1 - 1, until=until, scopes=U) == {"wan": 400_000}
    assert await db.ledger.spend_by_day(since=day1 - 1, until=until) == {
        "2026-11-22": 500_000,
        "2026-11-23": 100_000,
    }
    assert await db.ledger.spend_by_day(since=day1 + 1, until=until) == {"2026-11-23": 100_000}
    out = io.StringIO()
    n = await db.ledger.export_csv(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert n == len(rows) == 9
    assert rows[1]["kind"] == "settle" and rows[1]["amount_usd"] == "0.30"
    assert rows[0]["at_utc"].startswith("2026-11-22T12:00:00")
    out2 = io.StringIO()
    assert await db.ledger.export_csv(out2, since=day1 + 1) == 4
    assert len(await db.ledger.entries(until=day1 + 1)) == 5


async def test_usage_lists_every_cap(open_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(
        defaults=LimitDefaults(user=Limits(5_000_000, 50_000_000, 2, 20), server=Limits(50_000_000))
    )
    await db.ledger.reserve("a", U, 400_000)
    await db.ledger.settle("a", 300_000)
    await db.ledger.reserve("b", U, 200_000)
    usage = await db.ledger.usage(U)
    assert [(u.scope_kind, u.cap) for u in usage][:4] == [
        ("user", "daily"),
        ("user", "monthly"),
        ("user", "concurrent_jobs"),
        ("user", "jobs_per_hour"),
    ]
    assert len(usage) == 12
    daily = usage[0]
    assert (daily.limit, daily.used, daily.spent, daily.held, daily.remaining, daily.unit) == (
        5_000_000, 500_000, 300_000, 200_000, 4_500_000, "micros",
    )  # fmt: skip
    assert daily.resets_at == clock.now + 12 * 3600  # next midnight UTC
    conc = usage[2]
    assert (conc.limit, conc.used, conc.remaining, conc.resets_at) == (2, 1, 1, None)
    hourly = usage[3]
    assert (hourly.used, hourly.spent, hourly.held, hourly.remaining) == (2, 1, 1, 18)
    assert usage[4].scope_kind == "server" and usage[4].limit == 50_000_000
    assert usage[8].scope_kind == "global" and usage[8].limit is None
    assert usage[8].remaining is None
    no_server = await db.ledger.usage(Scopes(U.user_id))
    assert [u.scope_kind for u in no_server] == ["user"] * 4 + ["global"] * 4
