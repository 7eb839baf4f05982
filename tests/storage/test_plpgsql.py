"""The PostgreSQL functions of the plain steps are the Python statements, and behave the same.

- The latest migration that defines them holds exactly what `storage.ledger.plpgsql`
  generates from the statements Python runs: change a statement, add a migration.
- A seeded schedule of reserves, settles, voids, repeats, refusals and clock moves gives the
  same outcomes, history and accounts with the functions as without them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from storage import (
    Database,
    IdempotencyConflict,
    InvalidLedgerTransition,
    LimitDefaults,
    Limits,
    QuotaExceeded,
    Reservation,
    Scopes,
    UnknownReservation,
)
from storage.ledger import plpgsql
from storage.migrate import load_migrations
from tests.fixtures_db import FakeClock


def _normal(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def test_the_latest_migration_holds_the_generated_functions() -> None:
    defining = [m for m in load_migrations() if "FUNCTION ledger_reserve(" in m.sql]
    assert defining, "no migration defines ledger_reserve"
    latest = _normal(defining[-1].sql)
    for function in (plpgsql.reserve_function(), plpgsql.release_function()):
        assert _normal(function) in latest, (
            "the statements changed: add a migration with `python -m storage.ledger.plpgsql`"
        )


DEFAULTS = LimitDefaults(
    user=Limits(daily_micros=9_000, monthly_micros=30_000, concurrent_jobs=3, jobs_per_hour=5),
    server=Limits(daily_micros=20_000, concurrent_jobs=5, jobs_per_hour=12),
    global_=Limits(daily_micros=40_000, concurrent_jobs=12),
)


async def run_schedule(db: Database, clock: FakeClock, seed: int) -> list[Any]:
    """One operation at a time (no races): what each call answered."""
    rng = random.Random(seed)
    known: dict[str, tuple[Scopes, int]] = {}
    said: list[Any] = []
    for step in range(120):
        clock.advance(rng.choice([0, 0.4, 1, 59, 700, 3000, 30_000]))
        roll = rng.random()
        try:
            if roll < 0.45 or not known:
                key = f"k{step}"
                scopes = Scopes(f"u{rng.randrange(4)}", rng.choice([None, "s1", "s2"]))
                if rng.random() < 0.2:
                    scopes = Scopes(scopes.user_id, scopes.server_id, Limits(daily_micros=4_000))
                known[key] = (scopes, rng.choice([500, 1_000, 2_500, 4_000]))
                said.append(await db.ledger.reserve(key, *known[key]))
            elif roll < 0.55:
                key = rng.choice(list(known))
                said.append(await db.ledger.reserve(key, *known[key]))
            elif roll < 0.8:
                key = _pick(rng, known, said)
                said.append(await db.ledger.settle(key, rng.choice([None, 0, 200])))
            elif roll < 0.95:
                said.append(await db.ledger.void(_pick(rng, known, said)))
            else:
                kind, sid = rng.choice([("user", "u1"), ("server", "s1"), ("global", "*")])
                value = rng.choice([None, "default", 1, 3_000, 50_000])
                cap = rng.choice(["daily", "concurrent_jobs", "jobs_per_hour"])
                said.append(await db.ledger.set_limits(kind, sid, **{cap: value}))
        except (QuotaExceeded, IdempotencyConflict, InvalidLedgerTransition,
                UnknownReservation) as exc:  # fmt: skip
            said.append((type(exc).__name__, str(exc)))
    said.append(await db.ledger.usage(Scopes("u1", "s1")))
    return said


def _pick(rng: random.Random, known: dict[str, Any], said: list[Any]) -> str:
    """Mostly a key that is held now, sometimes any key (a repeat, or one that was refused)."""
    held = {r.key for r in said if isinstance(r, Reservation) and r.status == "held"}
    held -= {r.key for r in said if isinstance(r, Reservation) and r.status != "held"}
    if held and rng.random() < 0.8:
        return rng.choice(sorted(held))
    return rng.choice(list(known))


async def state(db: Database) -> list[Any]:
    async def read(tx: Any) -> list[Any]:
        return [
            [tuple(r) for r in await tx.fetch(f"SELECT * FROM {table} ORDER BY {order}")]  # noqa: S608
            for table, order in (
                ("holds", "key"),
                ("accounts", "scope_kind, scope_id, stripe"),
                ("starts", "user_id, at_second, server_id"),
            )
        ]

    entries = [(e.at, e.key, e.kind, e.amount_micros, e.note) for e in await db.ledger.entries()]
    return [*await db.raw.read(read), entries]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_functions_and_python_statements_agree(
    open_db: Callable[..., Awaitable[Database]], seed: int
) -> None:
    results = []
    for functions in (True, False):
        clock = FakeClock()
        db = await open_db(defaults=DEFAULTS, clock=clock)
        # each run in a database of its own: a fresh schema per run, same migrations
        await db.raw.script(lambda tx: _reset(tx))
        db.ledger.functions = functions
        said = await run_schedule(db, clock, seed)
        assert await db.ledger.check_books() == []
        results.append((said, await state(db)))
    (said_fast, state_fast), (said_python, state_python) = results
    assert said_fast == said_python
    assert state_fast == state_python


async def _reset(tx: Any) -> None:
    for table in ("holds", "entries", "accounts", "starts", "jobs", "job_events"):
        await tx.execute(f"DELETE FROM {table}")  # noqa: S608
