"""Ledger throughput: reservations per second (a reserve and its settle), beside the machine's
ceiling for the same shape of work measured in the same run.

    python bench/ledger.py [--backend sqlite|postgres] [--processes N] [--global-cap]
                           [--ceiling] [--seconds S] [--repeat R] [--json]
    python bench/ledger.py --all [--seconds S] [--repeat R]     # the README table

Workload: every process runs 1, 8 and 64 concurrent callers; a caller reserves $0.20 and then
settles it (every fourth settle is partial, $0.15, so the rest is released), in a loop. The
bot's default caps are in force (bot/config.py: $5 / $50 per user per day / month, $50 / $500
per server, 2 clips at once per user and 10 per server, 20 clips per user per hour; with
--global-cap also a bot-wide $1,000,000 per day and $10,000,000 per month). So that no count
cap refuses, each caller has a user of its own that it replaces after 20 clips (the hourly
cap, $4 of the $5 daily cap), and callers share a server in groups of 8 (under the 10 at
once), each moving to a new server after 25 clips ($40 of the server's $50 per day). Every
refusal is counted and printed: there should be none. New users and servers also exercise
the first reservation of a scope, as real traffic does.

The ceiling (--ceiling) is the minimal loop of the same shape on the same backend, durability
(SQLite WAL + synchronous=FULL through the project's own group commit; PostgreSQL
synchronous_commit=on, one statement in autocommit per step), processes and callers: per
operation two write transactions, each one conditional `UPDATE counters SET v = v + amount
WHERE id = caller AND v + amount <= cap RETURNING v` and one `INSERT` into a log table (on
PostgreSQL both in one statement, a data-modifying WITH). Ledger and ceiling alternate,
--repeat times, so both see the same background load; each figure is the median, with the
ratio of the medians and, in brackets, the lowest and highest ratio of one repetition.

PostgreSQL: --url or TEST_DATABASE_URL; a fresh schema is created and dropped. Figures only,
never pass/fail. With --json the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from storage import LimitDefaults, Limits, QuotaExceeded, Scopes, open_database  # noqa: E402
from storage.backend import Tx, open_backend  # noqa: E402

LEVELS = (1, 8, 64)
AMOUNT = 200_000  # $0.20
PARTIAL = 150_000
USER_CLIPS = 20  # a caller's user is replaced after this many (the default hourly cap)
SERVER_GROUP = 8  # callers sharing a server (the default concurrent cap per server is 10)
SERVER_CLIPS = 25  # per caller, before its group moves to a new server ($40 of $50 a day)
GLOBAL_DAILY = 1_000_000 * 10**6
GLOBAL_MONTHLY = 10_000_000 * 10**6


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


def _micros(usd: Decimal | None) -> int | None:
    return None if usd is None else int(usd * 10**6)


def limit_defaults(global_cap: bool) -> LimitDefaults:
    """The bot's own default caps (the field defaults of bot.config.Settings, not the
    environment), plus a global money cap when asked for."""

    def limits(kind: str) -> Limits:
        return Limits(
            daily_micros=_micros(_default(f"{kind}_daily_cap_usd")),
            monthly_micros=_micros(_default(f"{kind}_monthly_cap_usd")),
            concurrent_jobs=_default(f"{kind}_concurrent_jobs"),
            jobs_per_hour=_default(f"{kind}_jobs_per_hour"),
        )

    glob = limits("global")
    if global_cap:
        glob = Limits(GLOBAL_DAILY, GLOBAL_MONTHLY, glob.concurrent_jobs, glob.jobs_per_hour)
    return LimitDefaults(user=limits("user"), server=limits("server"), global_=glob)


# --------------------------------------------------------------------------- the ceiling

_CEILING_TABLES = (
    "CREATE TABLE IF NOT EXISTS bench_counters (id TEXT PRIMARY KEY, v BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_log (id {id_pk}, at DOUBLE PRECISION NOT NULL,"
    " key TEXT NOT NULL, amount BIGINT NOT NULL)",
)
_ID_PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgres": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}
_STEP = "UPDATE bench_counters SET v = v + $2 WHERE id = $1 AND v + $2 <= $3 RETURNING v"
_LOG = "INSERT INTO bench_log (at, key, amount) VALUES ($1, $2, $3)"
_STEP_PG = (
    "WITH u AS (UPDATE bench_counters SET v = v + $2 WHERE id = $1 AND v + $2 <= $3 RETURNING v)"
    " INSERT INTO bench_log (at, key, amount) SELECT $4, $5, $2 FROM u RETURNING amount"
)
_CEILING_CAP = 10**15


async def create_ceiling_tables(url: str) -> None:
    backend = await open_backend(url)
    try:

        async def run(tx: Tx) -> None:
            for sql in _CEILING_TABLES:
                await tx.execute(sql.format(id_pk=_ID_PK[backend.name]))

        await backend.script(run)
    finally:
        await backend.close()


# --------------------------------------------------------------------------- one process


@dataclass(frozen=True)
class Run:
    url: str
    mode: str  # "ledger" or "ceiling"
    proc: int
    level: int
    seconds: float
    global_cap: bool
    tag: str  # unique per run, so keys and scopes never repeat across runs


def caller_scopes(run: Run, caller: int, n: int) -> Scopes:
    user = f"u{run.tag}-{run.proc}-{caller}-{n // USER_CLIPS}"
    server = f"s{run.tag}-{run.proc}-{caller // SERVER_GROUP}-{n // SERVER_CLIPS}"
    return Scopes(user, server)


async def child_run(run: Run) -> dict[str, Any]:
    pool = min(run.level, 10)
    done = refused = 0
    if run.mode == "ledger":
        db = await open_database(run.url, defaults=limit_defaults(run.global_cap), pool_max=pool)
        closer = db.close
    else:
        backend = await open_backend(run.url, pool_max=pool)
        closer = backend.close
        ids = [f"c{run.tag}-{run.proc}-{t}" for t in range(run.level)]

        async def seed(tx: Tx) -> None:
            for cid in ids:
                await tx.execute("INSERT INTO bench_counters (id, v) VALUES ($1, 0)", cid)

        await backend.write(seed)
    try:
        # the barrier: the parent writes one line to every child at once
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.time()
        deadline = start + run.seconds

        async def ledger_caller(t: int) -> None:
            nonlocal done, refused
            n = 0
            while time.time() < deadline:
                key = f"{run.tag}-{run.proc}-{t}-{n}"
                try:
                    await db.ledger.reserve(key, caller_scopes(run, t, n), AMOUNT, model="bench")
                except QuotaExceeded:
                    refused += 1
                else:
                    await db.ledger.settle(key, PARTIAL if n % 4 == 0 else None)
                    done += 1
                n += 1

        async def ceiling_caller(t: int) -> None:
            nonlocal done
            cid, n = ids[t], 0
            while time.time() < deadline:
                key = f"{run.tag}-{run.proc}-{t}-{n}"
                for amount in (AMOUNT, -AMOUNT):
                    if backend.name == "postgres":
                        rows = await backend.write_one(
                            _STEP_PG, cid, amount, _CEILING_CAP, time.time(), key
                        )
                    else:
                        rows = await backend.write(
                            lambda tx, amount=amount, key=key: _ceiling_step(
                                tx, cid, amount, key
                            )
                        )
                    assert rows, "the ceiling's cap never refuses"
                n += 1
                done += 1

        caller = ledger_caller if run.mode == "ledger" else ceiling_caller
        await asyncio.gather(*(caller(t) for t in range(run.level)))
        end = time.time()
    finally:
        await closer()
    return {"ops": done, "refused": refused, "start": start, "end": end}


async def _ceiling_step(tx: Tx, cid: str, amount: int, key: str) -> list[Any]:
    rows = await tx.fetch(_STEP, cid, amount, _CEILING_CAP)
    await tx.execute(_LOG, time.time(), key, amount)
    return rows


def child_main() -> None:
    run = Run(**json.loads(sys.argv[2]))
    print(json.dumps(asyncio.run(child_run(run))), flush=True)


# --------------------------------------------------------------------------- the parent


async def run_level(url: str, processes: int, run: Run) -> tuple[float, int]:
    """Operations per second over all processes (first start to last end); refusals."""
    procs = []
    for p in range(processes):
        spec = json.dumps({**run.__dict__, "proc": p})
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", spec,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(child)
    await asyncio.sleep(1.5)  # let every child import, connect and migrate before the start
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    results = []
    for p in procs:
        out, _ = await p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a bench process failed with exit status {p.returncode}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    ops = sum(r["ops"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return ops / wall, sum(r["refused"] for r in results)


@dataclass
class Figures:
    ledger: list[float]
    ceiling: list[float]
    refused: int

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ledger": round(statistics.median(self.ledger), 1),
            "ledger_runs": [round(x, 1) for x in self.ledger],
            "refused": self.refused,
        }
        if self.ceiling:
            ratios = [a / b for a, b in zip(self.ledger, self.ceiling, strict=True)]
            out.update(
                ceiling=round(statistics.median(self.ceiling), 1),
                ceiling_runs=[round(x, 1) for x in self.ceiling],
                ratio=round(statistics.median(self.ledger) / statistics.median(self.ceiling), 3),
                ratio_min=round(min(ratios), 3),
                ratio_max=round(max(ratios), 3),
            )
        return out

    def cell(self) -> str:
        s = self.summary()
        if "ceiling" not in s:
            return f"{s['ledger']:,.0f}"
        text = (
            f"{s['ledger']:,.0f} / {s['ceiling']:,.0f} ({s['ratio']:.2f}"
            + (
                f", {s['ratio_min']:.2f}–{s['ratio_max']:.2f})"
                if len(self.ledger) > 1
                else ")"
            )
        )
        return text + (f" [{self.refused} refused]" if self.refused else "")


async def fresh_url(backend: str, url: str | None) -> tuple[str, Any]:
    """A URL on an empty database, and what to clean up afterwards."""
    if backend == "postgres":
        import asyncpg

        base = url or os.environ.get("TEST_DATABASE_URL")
        if not base:
            raise SystemExit("postgres: give --url or set TEST_DATABASE_URL")
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(base)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        return f"{base}{'&' if '?' in base else '?'}search_path={schema}", (base, schema)
    tmpdir = tempfile.TemporaryDirectory(prefix="ledger-bench-")
    return f"sqlite:///{Path(tmpdir.name) / 'bench.db'}", tmpdir


async def cleanup(handle: Any) -> None:
    if isinstance(handle, tuple):
        import asyncpg

        base, schema = handle
        conn = await asyncpg.connect(base)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
    else:
        handle.cleanup()


async def measure(
    backend: str, processes: int, global_cap: bool, *, ceiling: bool, seconds: float,
    repeat: int, url: str | None, say: Any,
) -> dict[int, Figures]:  # fmt: skip
    db_url, handle = await fresh_url(backend, url)
    try:
        async with await open_database(db_url) as db:  # migrate once, up front
            pass
        if ceiling:
            await create_ceiling_tables(db_url)
        out = {level: Figures([], [], 0) for level in LEVELS}
        for r in range(repeat):
            for level in LEVELS:
                modes = ("ledger", "ceiling") if ceiling else ("ledger",)
                for mode in modes:
                    run = Run(
                        url=db_url, mode=mode, proc=0, level=level, seconds=seconds,
                        global_cap=global_cap, tag=f"{r}{mode[0]}{level}",
                    )  # fmt: skip
                    rate, refused = await run_level(db_url, processes, run)
                    figs = out[level]
                    (figs.ledger if mode == "ledger" else figs.ceiling).append(rate)
                    figs.refused += refused
                    say(f"  {backend} x{processes} {'global cap ' if global_cap else ''}"
                        f"{level:>2} callers, run {r + 1}/{repeat}, {mode}: {rate:,.0f}/s"
                        + (f" ({refused} refused)" if refused else ""))  # fmt: skip
        async with await open_database(db_url) as db:
            problems = await db.ledger.check_books()
        if problems:
            raise SystemExit(f"the books do not balance after the bench: {problems[:3]}")
        return out
    finally:
        await cleanup(handle)


def describe(backend: str, processes: int, global_cap: bool) -> str:
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    procs = "1 process" if processes == 1 else f"{processes} processes"
    return f"{name}, {procs}" + (", global money cap" if global_cap else "")


def markdown(rows: list[tuple[str, dict[int, Figures]]], ceiling: bool) -> str:
    what = "ledger / ceiling (ratio, lowest–highest)" if ceiling else "ledger"
    lines = [
        f"| reserve + settle per second: {what} | "
        + " | ".join(f"{n} caller{'s' if n > 1 else ''}" for n in LEVELS)
        + " |",
        "|---|" + "---|" * len(LEVELS),
    ]
    for label, figs in rows:
        lines.append(f"| {label} | " + " | ".join(figs[n].cell() for n in LEVELS) + " |")
    return "\n".join(lines)


def conditions(args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the end, {args.seconds:g} s per figure, {args.repeat} runs each"
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    def say(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    if args.all:
        configs = [
            (b, p, g) for b in ("sqlite", "postgres") for p in (1, 4) for g in (False, True)
        ]
        ceiling = True
    else:
        configs = [(args.backend, args.processes, args.global_cap)]
        ceiling = args.ceiling
    rows = []
    results = []
    for backend, processes, global_cap in configs:
        figs = await measure(
            backend, processes, global_cap, ceiling=ceiling, seconds=args.seconds,
            repeat=args.repeat, url=args.url, say=say,
        )  # fmt: skip
        rows.append((describe(backend, processes, global_cap), figs))
        results.append(
            {
                "backend": backend, "processes": processes, "global_cap": global_cap,
                "levels": {str(n): figs[n].summary() for n in LEVELS},
            }
        )  # fmt: skip
    if not args.json:
        print(markdown(rows, ceiling))
        print(f"\n{conditions(args)}")
    return {"conditions": conditions(args), "results": results}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main()
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per figure")
    parser.add_argument("--url", help="database URL (postgres: the base URL for a fresh schema)")
    parser.add_argument(
        "--global-cap", action="store_true", help="also set a bot-wide money cap"
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="also measure the minimal same-shape loop"
    )
    parser.add_argument(
        "--all", action="store_true",
        help="every README row: both backends, 1 and 4 processes, with and without a global "
        "cap, with the ceiling",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    cli_args = parser.parse_args()
    result = asyncio.run(main(cli_args))
    if cli_args.json:
        print(json.dumps(result))
