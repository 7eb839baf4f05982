"""VOPR-style: a seeded scheduler throws concurrent reserve/settle/void/repeat at the ledger
from several connections, and after EVERY step checks that no cap is exceeded and that the
budget counters equal the sum of the holds. A failure prints the seed to replay it.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest

from storage import (
    Database,
    IdempotencyConflict,
    InvalidLedgerTransition,
    LimitDefaults,
    Limits,
    QuotaExceeded,
    Scopes,
    UnknownReservation,
)
from storage.periods import day_start, month_start
from tests.fixtures_db import FakeClock

USERS = [f"u{i}" for i in range(6)]
SERVERS = [None, "s1", "s2"]
DEFAULTS = LimitDefaults(
    user=Limits(daily_micros=9_000, monthly_micros=30_000, concurrent_jobs=3, jobs_per_hour=6),
    server=Limits(daily_micros=20_000, concurrent_jobs=5),
    global_=Limits(daily_micros=35_000, monthly_micros=150_000, concurrent_jobs=8),
)


async def check_invariants(db: Database, now: float) -> None:
    assert await db.ledger.check_books() == []
    rows = await db.raw.read(lambda tx: tx.fetch("SELECT * FROM holds"))
    money: dict[tuple[str, str, str, int], int] = defaultdict(int)
    held: dict[tuple[str, str], int] = defaultdict(int)
    hourly: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        if r["status"] not in ("held", "settled"):
            continue
        amount = r["amount_micros"] if r["status"] == "held" else r["settled_micros"]
        for kind, sid in Scopes(r["user_id"], r["server_id"]).chain():
            money[(kind, sid, "day", int(r["day_start"]))] += int(amount)
            money[(kind, sid, "month", int(r["month_start"]))] += int(amount)
            if r["status"] == "held":
                held[(kind, sid)] += 1
            if float(r["created_at"]) > now - 3600:
                hourly[(kind, sid)] += 1
    for (kind, _sid, period, _start), used in money.items():
        lim = DEFAULTS.for_kind(kind)
        cap = lim.daily_micros if period == "day" else lim.monthly_micros
        assert cap is None or used <= cap, (kind, period, used, cap)
    for (kind, _sid), n in held.items():
        cap_n = DEFAULTS.for_kind(kind).concurrent_jobs
        assert cap_n is None or n <= cap_n
    for (kind, _sid), n in hourly.items():
        cap_n = DEFAULTS.for_kind(kind).jobs_per_hour
        assert cap_n is None or n <= cap_n


async def run_schedule(dbs: list[Database], clock: FakeClock, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    known: dict[str, tuple[Scopes, int]] = {}
    outcomes: dict[str, str] = {}  # key -> the last status the ledger reported
    counter = 0

    async def op(kind: str, key: str, db: Database, arg: Any) -> None:
        try:
            if kind == "reserve":
                scopes, amount = arg
                r = await db.ledger.reserve(key, scopes, amount)
                prev = outcomes.get(key)
                assert prev in (None, "held", "settled", "voided")
                outcomes[key] = r.status
            elif kind == "settle":
                r = await db.ledger.settle(key, arg)
                outcomes[key] = r.status
            else:
                r = await db.ledger.void(key)
                outcomes[key] = r.status
        except QuotaExceeded:
            assert outcomes.get(key) in (None, "refused")
            outcomes[key] = "refused"
        except UnknownReservation:
            # a settle/void sent together with the key's first reserve may run first
            assert kind != "reserve"
            assert outcomes.get(key) in (None, "refused") or key in first_reserved_now
        except (InvalidLedgerTransition, IdempotencyConflict):
            assert kind != "reserve"  # a retry always carries the same amount and scopes

    first_reserved_now: set[str] = set()  # keys whose first reserve is in the running batch
    for step in range(steps):
        clock.advance(rng.choice([0, 1, 30, 300, 1800, 7200]))
        first_reserved_now.clear()
        batch = []
        for _ in range(rng.randint(1, 10)):
            db = rng.choice(dbs)
            roll = rng.random()
            if roll < 0.5 or not known:
                counter += 1
                key = f"k{counter}"
                scopes = Scopes(rng.choice(USERS), rng.choice(SERVERS))
                known[key] = (scopes, rng.choice([500, 1_000, 2_500, 4_000]))
                first_reserved_now.add(key)
                batch.append(op("reserve", key, db, known[key]))
            elif roll < 0.6:
                key = rng.choice(list(known))
                batch.append(op("reserve", key, db, known[key]))  # a retry
            elif roll < 0.85:
                key = rng.choice(list(known))
                amount = rng.choice([None, known[key][1], known[key][1] // 2, 0])
                batch.append(op("settle", key, db, amount))
            else:
                batch.append(op("void", rng.choice(list(known)), db, None))
        await asyncio.gather(*batch)
        try:
            await check_invariants(dbs[0], clock.now)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, step {step}: {exc}") from exc
    # the ledger agrees with what callers were told
    for key, status in outcomes.items():
        res = await dbs[0].ledger.get(key)
        if status == "refused":
            assert res is None and await dbs[0].ledger.get_refusal(key) is not None
        else:
            assert res is not None and res.status == status, (seed, key)
    assert day_start(clock.now) > day_start(clock.now - 86400 * 2)
    assert month_start(clock.now) >= month_start(clock.now - 1)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
async def test_vopr_seeded_schedule(open_db, clock: FakeClock, seed: int) -> None:  # type: ignore[no-untyped-def]
    dbs = [await open_db(defaults=DEFAULTS) for _ in range(3)]
    await run_schedule(dbs, clock, seed, steps=60)
    # PostgreSQL: every lock was taken in the one order - no deadlock had to be broken
    deadlocks = sum(getattr(db.raw, "retried", {}).get("DeadlockDetectedError", 0) for db in dbs)
    assert deadlocks == 0, f"seed {seed}: {deadlocks} deadlocks"
