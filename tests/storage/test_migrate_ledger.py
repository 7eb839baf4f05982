"""Migration 0007 carries a ledger kept in the old tables (budgets, limit_overrides, counted
holds) over to the accounts: what is used, held and running, the caps set per scope, and the
clips started in the last hour. Databases in the field have data; none of it may be lost.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from storage import LimitDefaults, Limits, QuotaExceeded, Scopes, open_database
from storage.backend import Backend, Tx, open_backend
from storage.ledger import stripe_of
from storage.migrate import load_migrations, migrate
from storage.periods import day_start, month_start
from tests.fixtures_db import START, FakeClock

DAY, MONTH = day_start(START), month_start(START)
YESTERDAY = DAY - 86_400
# key, status, amount, settled, user, server, day, created
HOLDS = [
    ("h1", "held", 400_000, 0, "alice", "g", DAY, START - 600),
    ("h2", "settled", 400_000, 300_000, "alice", "g", DAY, START - 1_200.5),
    ("h3", "voided", 100_000, 0, "bob", None, DAY, START - 900),
    ("h4", "refused", 900_000, 0, "bob", None, DAY, START - 800),
    ("h5", "settled", 200_000, 200_000, "alice", "g", YESTERDAY, START - 86_000),
]
OVERRIDES = [
    ("user", "alice", "daily", 1_000_000),
    ("global", "*", "monthly", None),  # explicitly no cap
    ("server", "g", "concurrent_jobs", 3),
]


async def _apply_up_to(backend: Backend, version: int) -> None:
    """The migrations as they were before the accounts (what a database in the field has)."""

    async def run(tx: Tx) -> None:
        await tx.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        for mig in load_migrations():
            if mig.version > version:
                continue
            for stmt in mig.statements(backend.name):
                await tx.execute(stmt)
            await tx.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, $3)", mig.version, mig.name,
                time.time(),
            )  # fmt: skip

    await backend.script(run)


async def _old_ledger(tx: Tx) -> None:
    budgets: dict[tuple[str, str, str, int, int], int] = {}
    for key, status, amount, settled, user, server, day, created in HOLDS:
        await tx.execute(
            "INSERT INTO holds (key, status, amount_micros, settled_micros, user_id, server_id,"
            " day_start, month_start, stripe, refusal, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            key, status, amount, settled, user, server, day, month_start(day), stripe_of(key),
            '{"x": 1}' if status == "refused" else None, created,
        )  # fmt: skip
        await tx.execute(
            "INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            created, key, "refuse" if status == "refused" else "reserve", amount, user, server,
        )  # fmt: skip
        if status not in ("held", "settled"):
            continue
        used = amount if status == "held" else settled
        scopes = Scopes(user, server).chain()
        for kind, sid in scopes:
            stripe = stripe_of(key) if kind == "global" else 0
            for period, start in (("day", day), ("month", month_start(day))):
                k = (kind, sid, period, start, stripe)
                budgets[k] = budgets.get(k, 0) + used
    for (kind, sid, period, start, stripe), used in budgets.items():
        await tx.execute(
            "INSERT INTO budgets (scope_kind, scope_id, period_kind, period_start, stripe,"
            " used_micros) VALUES ($1, $2, $3, $4, $5, $6)",
            kind, sid, period, start, stripe, used,
        )  # fmt: skip
    for kind, sid, cap, value in OVERRIDES:
        await tx.execute(
            "INSERT INTO limit_overrides (scope_kind, scope_id, cap, value, updated_at)"
            " VALUES ($1, $2, $3, $4, 0)",
            kind, sid, cap, value,
        )  # fmt: skip


async def _account(db: Any, kind: str, sid: str) -> Any:
    sql = "SELECT * FROM accounts WHERE scope_kind = $1 AND scope_id = $2 AND stripe = 0"
    return await db.raw.read(lambda tx: tx.fetchrow(sql, kind, sid))


async def test_the_old_ledger_is_carried_over(database_url: str) -> None:
    backend = await open_backend(database_url)
    try:
        accounts = next(m.version for m in load_migrations() if m.name == "ledger_accounts")
        await _apply_up_to(backend, accounts - 1)
        await backend.script(_old_ledger)
        assert accounts in await migrate(backend)
    finally:
        await backend.close()
    defaults = LimitDefaults(
        user=Limits(daily_micros=5_000_000, concurrent_jobs=2),
        global_=Limits(monthly_micros=10**12),
    )
    clock = FakeClock()
    async with await open_database(database_url, defaults=defaults, clock=clock) as db:
        assert await db.ledger.check_books() == []  # accounts and starts agree with the holds
        alice = await _account(db, "user", "alice")
        assert (alice["day_start"], alice["day_micros"], alice["day_held"]) == (
            DAY, 700_000, 400_000,
        )  # fmt: skip
        assert (alice["month_micros"], alice["month_held"], alice["running"]) == (
            900_000, 400_000, 1,
        )  # fmt: skip
        assert await db.ledger.get_limits("user", "alice") == Limits(1_000_000, None, 2, None)
        assert (await db.ledger.get_limits("server", "g")).concurrent_jobs == 3
        assert (await db.ledger.get_limits("global", "*")).monthly_micros is None
        usage = {(u.scope_kind, u.cap): u for u in await db.ledger.usage(Scopes("alice", "g"))}
        hourly = usage[("user", "jobs_per_hour")]
        assert (hourly.used, hourly.held, hourly.spent) == (2, 1, 1)  # h1 and h2, this hour
        assert usage[("server", "concurrent_jobs")].used == 1
        with pytest.raises(QuotaExceeded) as refused:  # the carried-over cap applies
            await db.ledger.reserve("h6", Scopes("alice", "g"), 400_000)
        assert (refused.value.refusal.limit, refused.value.refusal.used) == (1_000_000, 700_000)
        await db.ledger.settle("h1", 100_000)  # a carried-over hold settles as any other
        await db.ledger.reserve("h7", Scopes("alice", "g"), 500_000)
        assert await db.ledger.check_books() == []


async def _rows(db: Any, table: str, order: str) -> list[tuple[Any, ...]]:
    rows = await db.raw.read(lambda tx: tx.fetch(f"SELECT * FROM {table} ORDER BY {order}"))  # noqa: S608
    return [tuple(r) for r in rows]


async def test_the_lean_history_keeps_every_hold_and_line(database_url: str) -> None:
    """0009 (SQLite: holds and entries built anew) and 0010 (PostgreSQL: constraints dropped)
    keep every row as it was, and the history goes on numbering after its newest line."""
    lean = next(m.version for m in load_migrations() if m.name == "ledger_lean_sqlite")
    backend = await open_backend(database_url)
    try:
        await _apply_up_to(backend, lean - 1)
    finally:
        await backend.close()
    clock = FakeClock()
    async with await open_database(database_url, clock=clock, migrate=False) as db:
        alice, bob = Scopes("alice", "g"), Scopes("bob")
        await db.ledger.reserve("a1", alice, 300_000, model="m", note="first")
        await db.ledger.reserve("a2", alice, 200_000)
        await db.ledger.reserve("b1", bob, 100_000)
        await db.ledger.settle("a1", 250_000, note="done")
        await db.ledger.void("b1")
        holds, entries = await _rows(db, "holds", "key"), await _rows(db, "entries", "id")
    async with await open_database(database_url, clock=clock) as db:
        assert await _rows(db, "holds", "key") == holds
        assert await _rows(db, "entries", "id") == entries
        assert await db.ledger.check_books() == []
        await db.ledger.settle("a2")
        newest = await _rows(db, "entries", "id")
        assert newest[:-1] == entries
        assert newest[-1][0] > entries[-1][0] and newest[-1][2:4] == ("a2", "settle")
