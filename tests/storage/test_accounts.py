"""The accounts behind the caps: whole-second hours, periods that only move forward, shares of
a bot-wide cap that follow the cap, the purge of old starts, and books that catch tampering.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from storage import (
    Database,
    LimitDefaults,
    Limits,
    QuotaExceeded,
    Scopes,
    StorageError,
)
from storage.ledger import stripe_of
from storage.periods import day_start
from tests.fixtures_db import START, FakeClock

U = Scopes("cli:alice", "discord:g")
OpenDb = Callable[..., Awaitable[Database]]


async def test_an_hour_is_counted_in_whole_seconds_never_less(
    open_db: OpenDb, clock: FakeClock
) -> None:
    db = await open_db(defaults=LimitDefaults(user=Limits(jobs_per_hour=1)))
    clock.set(START + 0.4)  # counts as started at START + 1
    await db.ledger.reserve("a", U, 1)
    clock.set(START + 3600.5)  # the exact hour is over, the whole second is not
    with pytest.raises(QuotaExceeded) as info:
        await db.ledger.reserve("b", U, 1)
    assert info.value.refusal.resets_at == START + 3601
    assert "It resets at 13:00 UTC" in info.value.refusal.message()
    clock.set(START + 3601)
    await db.ledger.reserve("c", U, 1)
    assert await db.ledger.check_books() == []


async def test_a_clock_behind_counts_in_the_period_already_opened(
    open_db: OpenDb, clock: FakeClock
) -> None:
    midnight = day_start(START) + 86_400
    ahead = FakeClock(midnight + 0.5)
    behind = FakeClock(midnight - 0.5)  # another process, its clock a second late
    caps = LimitDefaults(user=Limits(daily_micros=1_000))
    db_ahead = await open_db(defaults=caps, clock=ahead)
    db_behind = await open_db(defaults=caps, clock=behind)
    await db_ahead.ledger.reserve("today", U, 600)
    late = await db_behind.ledger.reserve("late", U, 300)
    assert late.status == "held"
    with pytest.raises(QuotaExceeded) as info:  # both count in the new day
        await db_behind.ledger.reserve("late2", U, 200)
    assert (info.value.refusal.used, info.value.refusal.resets_at) == (900, midnight + 86_400)
    hold = await db_ahead.raw.read(
        lambda tx: tx.fetchrow("SELECT day_start FROM holds WHERE key = 'late'")
    )
    assert hold is not None and hold["day_start"] == midnight
    await db_ahead.ledger.void("late")  # given back to the day it was counted in
    await db_ahead.ledger.reserve("after", U, 400)
    assert await db_ahead.ledger.check_books() == []


async def test_shares_follow_the_bot_wide_cap_of_each_process(open_db: OpenDb) -> None:
    """Two processes with different settings: each cap is enforced exactly, never a share cut
    for another cap."""
    loose = await open_db(defaults=LimitDefaults(global_=Limits(daily_micros=10_000)))
    tight = await open_db(defaults=LimitDefaults(global_=Limits(daily_micros=5_000)))
    await loose.ledger.reserve("a", Scopes("u1"), 4_000)  # shares of 10,000 cut
    with pytest.raises(QuotaExceeded) as info:
        await tight.ledger.reserve("b", Scopes("u2"), 2_000)
    assert (info.value.refusal.limit, info.value.refusal.used) == (5_000, 4_000)
    await tight.ledger.reserve("c", Scopes("u2"), 1_000)  # exactly to the tighter cap
    await loose.ledger.reserve("d", Scopes("u3"), 5_000)  # the looser one still has room
    assert await loose.ledger.check_books() == []


async def test_setting_a_bot_wide_cap_forgets_the_shares(open_db: OpenDb) -> None:
    db = await open_db(defaults=LimitDefaults(global_=Limits(daily_micros=100_000)))
    await db.ledger.reserve("a", Scopes("u1"), 10_000)
    await db.ledger.set_limits("global", "*", daily_micros=12_000)
    same_stripe = next(k for k in (f"k{i}" for i in range(200)) if stripe_of(k) == stripe_of("a"))
    with pytest.raises(QuotaExceeded) as info:  # the old share had room; the new cap has not
        await db.ledger.reserve(same_stripe, Scopes("u2"), 2_001)
    assert info.value.refusal.used == 10_000
    await db.ledger.set_limits("global", "*", daily_micros=None)
    await db.ledger.reserve("big", Scopes("u3"), 500_000)
    assert await db.ledger.check_books() == []


async def test_old_starts_are_purged_and_a_late_void_still_works(
    open_db: OpenDb, clock: FakeClock
) -> None:
    db = await open_db(defaults=LimitDefaults(user=Limits(jobs_per_hour=2)))
    await db.ledger.reserve("old", U, 1)

    async def starts() -> int:
        return int(await db.raw.read(lambda tx: tx.fetchval("SELECT COUNT(*) FROM starts")))

    assert await starts() == 1  # one row per person, server and second
    clock.advance(3 * 3600)
    await db.ledger.reserve("new", U, 1)  # the first reservation in a while purges
    assert await starts() == 1
    await db.ledger.void("old")  # its start is gone already; nothing to take back
    await db.ledger.reserve("new2", U, 1)
    with pytest.raises(QuotaExceeded):
        await db.ledger.reserve("new3", U, 1)
    assert await db.ledger.check_books() == []


async def test_the_books_catch_a_tampered_account(db: Database) -> None:
    await db.ledger.reserve("a", U, 700)
    await db.ledger.settle("a", 500)
    assert await db.ledger.check_books() == []
    await db.raw.write(
        lambda tx: tx.execute(
            "UPDATE accounts SET day_micros = day_micros + 1, running = running + 1"
            " WHERE scope_kind = 'server'"
        )
    )
    problems = await db.ledger.check_books()
    assert len(problems) == 2 and all("'server', 'discord:g'" in p for p in problems)


async def test_a_missing_account_is_an_error_not_made_up(db: Database) -> None:
    await db.ledger.reserve("a", U, 700)
    await db.raw.write(lambda tx: tx.execute("DELETE FROM accounts WHERE scope_kind = 'server'"))
    with pytest.raises(StorageError, match="missing"):
        await db.ledger.settle("a")
    got = await db.ledger.get("a")
    assert got is not None and got.status == "held"  # nothing was written
    count = await db.raw.read(
        lambda tx: tx.fetchval("SELECT COUNT(*) FROM accounts WHERE scope_kind = 'server'")
    )
    assert count == 0


async def test_an_account_never_goes_below_zero(db: Database) -> None:
    """No CHECK constraint guards the counters; the statements that give back do."""
    await db.ledger.reserve("a", U, 700)
    await db.raw.write(
        lambda tx: tx.execute("UPDATE accounts SET running = 0 WHERE scope_kind = 'user'")
    )
    with pytest.raises(StorageError, match="hold less"):
        await db.ledger.void("a")
    got = await db.ledger.get("a")
    assert got is not None and got.status == "held"  # nothing was written
    running = await db.raw.read(
        lambda tx: tx.fetchval("SELECT running FROM accounts WHERE scope_kind = 'server'")
    )
    assert running == 1
