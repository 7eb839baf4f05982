"""Several OS processes hammer ONE database (SQLite file / PostgreSQL schema) under a shared
cap that fits exactly K reservations: exactly K succeed, and the books balance.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from storage import LimitDefaults, Limits, QuotaExceeded, Scopes, open_database

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
TASKS = 6
ATTEMPTS = 5  # per task: 4 * 6 * 5 = 120 attempts
K = 37
AMOUNT = 1_000
CAPS = {
    "global-money": LimitDefaults(global_=Limits(daily_micros=K * AMOUNT)),
    "server-concurrent": LimitDefaults(server=Limits(concurrent_jobs=K)),
    # no global cap: the global stripes are raised without a check, the server row is exact
    "server-money": LimitDefaults(server=Limits(daily_micros=K * AMOUNT)),
}


def child() -> None:
    url, case, proc = sys.argv[1], sys.argv[2], int(sys.argv[3])

    async def main() -> dict[str, int]:
        ok = refused = 0
        async with await open_database(url, defaults=CAPS[case], pool_max=TASKS) as db:

            async def task(t: int) -> None:
                nonlocal ok, refused
                for a in range(ATTEMPTS):
                    scopes = Scopes(f"u{(proc + t + a) % 9}", "guild")
                    try:
                        await db.ledger.reserve(f"p{proc}-t{t}-a{a}", scopes, AMOUNT)
                        ok += 1
                    except QuotaExceeded:
                        refused += 1

            await asyncio.gather(*(task(t) for t in range(TASKS)))
        return {"ok": ok, "refused": refused}

    print(json.dumps(asyncio.run(main())))


@pytest.mark.parametrize("case", sorted(CAPS))
async def test_processes_share_a_cap_exactly(database_url: str, case: str) -> None:
    async with await open_database(database_url):
        pass  # migrate once up front; the children's own migration then has nothing to do
    code = "from tests.storage.test_processes import child; child()"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            database_url,
            case,
            str(p),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for p in range(PROCESSES)
    ]
    results = []
    for p in procs:
        out, err = await p.communicate()
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert sum(r["ok"] for r in results) == K
    assert sum(r["ok"] + r["refused"] for r in results) == PROCESSES * TASKS * ATTEMPTS
    async with await open_database(database_url, defaults=CAPS[case]) as db:
        assert await db.ledger.check_books() == []
        entries = await db.ledger.entries()
        assert sum(e.kind == "reserve" for e in entries) == K
        usage = {(u.scope_kind, u.cap): u for u in await db.ledger.usage(Scopes("u0", "guild"))}
        if case == "global-money":
            assert usage[("global", "daily")].used == K * AMOUNT
        elif case == "server-money":
            assert usage[("server", "daily")].used == K * AMOUNT
            assert usage[("global", "daily")].used == K * AMOUNT
        else:
            assert usage[("server", "concurrent_jobs")].used == K
