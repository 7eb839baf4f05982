"""The global counters are striped: without a global money cap a hold raises only its own
stripe; with one, the SUM of the stripes is checked. Reports and the books sum the stripes.
"""

from __future__ import annotations

from typing import Any

import pytest

from storage import Database, QuotaExceeded, Scopes
from storage.ledger import GLOBAL_STRIPES, stripe_of
from tests.fixtures_db import FakeClock


def test_stripe_of_is_pinned() -> None:
    # crc32 % 16: these values must never change (holds record their stripe; see 0001_init.sql)
    assert GLOBAL_STRIPES == 16
    assert [stripe_of(k) for k in ("a", "job-j1", "k1", "k2", "é")] == [3, 15, 9, 3, 14]


async def global_rows(db: Database) -> list[Any]:
    """The global stripes' counters, one row per period kind and stripe."""
    rows = await db.raw.read(
        lambda tx: tx.fetch(
            "SELECT stripe, day_micros, month_micros FROM accounts WHERE scope_kind = 'global'"
            " ORDER BY stripe"
        )
    )
    return [
        {"period_kind": kind, "stripe": r["stripe"], "used_micros": r[f"{kind}_micros"]}
        for kind in ("day", "month")
        for r in rows
    ]


async def test_without_a_global_cap_each_hold_raises_its_own_stripe(db: Database) -> None:
    keys = [f"k{i}" for i in range(40)]
    for i, key in enumerate(keys):
        await db.ledger.reserve(key, Scopes(f"u{i % 3}", "g" if i % 2 else None), 1_000 + i)
    for key in keys[::3]:
        await db.ledger.settle(key, 500)
    for key in keys[1::3]:
        await db.ledger.void(key)
    rows = await global_rows(db)
    assert len({r["stripe"] for r in rows}) > 1  # spread over several stripes
    expected: dict[int, int] = {}
    for i, key in enumerate(keys):
        used = 500 if i % 3 == 0 else 0 if i % 3 == 1 else 1_000 + i
        expected[stripe_of(key)] = expected.get(stripe_of(key), 0) + used
    day = {r["stripe"]: int(r["used_micros"]) for r in rows if r["period_kind"] == "day"}
    assert {s: u for s, u in day.items() if u} == {s: u for s, u in expected.items() if u}
    usage = {(u.scope_kind, u.cap): u for u in await db.ledger.usage(Scopes("u0"))}
    assert usage[("global", "daily")].used == sum(expected.values())
    assert usage[("global", "daily")].limit is None
    assert await db.ledger.check_books() == []


async def test_a_global_cap_checks_the_sum_of_all_stripes(db: Database, clock: FakeClock) -> None:
    for i in range(10):
        await db.ledger.reserve(f"k{i}", Scopes(f"u{i}"), 1_000)
    assert len({stripe_of(f"k{i}") for i in range(10)}) > 1
    # set after the fact: the cap counts what the stripes already hold
    await db.ledger.set_limits("global", "*", daily_micros=12_000)
    await db.ledger.reserve("k10", Scopes("x"), 2_000)
    with pytest.raises(QuotaExceeded) as info:
        await db.ledger.reserve("k11", Scopes("y"), 1)
    r = info.value.refusal
    assert (r.scope_kind, r.scope_id, r.cap, r.used, r.remaining) == ("global", "*", "daily",
                                                                      12_000, 0)  # fmt: skip
    await db.ledger.void("k3")  # frees its own stripe; the sum has room again
    await db.ledger.reserve("k12", Scopes("y"), 1_000)
    rows = await global_rows(db)
    day_rows = [r for r in rows if r["period_kind"] == "day"]
    assert len(day_rows) == GLOBAL_STRIPES  # the capped check created every stripe
    assert sum(int(r["used_micros"]) for r in day_rows) == 12_000
    # the hold reserved before midnight is released in its own day, after midnight too
    clock.advance(86_400)
    await db.ledger.settle("k0", 400)
    assert sum(int(r["used_micros"]) for r in await global_rows(db)
               if r["period_kind"] == "day") == 11_400  # fmt: skip
    await db.ledger.reserve("next-day", Scopes("z"), 12_000)  # a new day, a new sum
    assert await db.ledger.check_books() == []
