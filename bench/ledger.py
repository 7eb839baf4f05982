"""Ledger throughput: reservations per second (reserve + settle) with 1, 8 and 64 concurrent
callers per process, over one SQLite file or one PostgreSQL schema.

    python bench/ledger.py [--backend sqlite|postgres] [--processes N] [--seconds S]
                           [--global-cap] [--json]

PostgreSQL: --url or TEST_DATABASE_URL; a fresh schema is created and dropped. Caps have the
shape of the bot's defaults (see `limit_defaults`), set high enough never to refuse; with
--global-cap a global money cap is set too. With --json the LAST
line of stdout is one JSON object: {"backend", "processes", "ops_per_s": {"1", "8", "64"}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import LimitDefaults, Limits, Scopes, open_database  # noqa: E402

LEVELS = (1, 8, 64)
BIG = 10**15


def limit_defaults(global_cap: bool) -> LimitDefaults:
    """The shape of the bot's own defaults (bot.config): user and server money caps, user
    concurrent and hourly caps, a server concurrent cap, no global cap unless asked for.
    The caps are high enough never to refuse, but they are set, so every cap check runs.
    """
    return LimitDefaults(
        user=Limits(
            daily_micros=BIG, monthly_micros=BIG, concurrent_jobs=10**6, jobs_per_hour=10**9
        ),
        server=Limits(daily_micros=BIG, monthly_micros=BIG, concurrent_jobs=10**6),
        global_=Limits(daily_micros=BIG, monthly_micros=BIG) if global_cap else Limits(),
    )


async def child_run(
    url: str, proc: int, level: int, seconds: float, global_cap: bool
) -> dict[str, Any]:
    defaults = limit_defaults(global_cap)
    async with await open_database(url, defaults=defaults, pool_max=min(level, 10)) as db:
        # the barrier: the parent writes one line to every child at once
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.time()
        deadline = start + seconds
        done = 0

        async def caller(t: int) -> None:
            nonlocal done
            scopes = Scopes(f"u{proc}-{t % 50}", f"s{t % 5}")
            n = 0
            while time.time() < deadline:
                key = f"{proc}-{level}-{t}-{n}-{uuid.uuid4().hex[:8]}"
                await db.ledger.reserve(key, scopes, 400_000, model="bench")
                await db.ledger.settle(key, 300_000 if n % 4 == 0 else None)
                n += 1
                done += 1

        await asyncio.gather(*(caller(t) for t in range(level)))
        end = time.time()
    return {"ops": done, "start": start, "end": end}


def child_main() -> None:
    url, proc, level, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    global_cap = sys.argv[6] == "1"
    print(json.dumps(asyncio.run(child_run(url, proc, level, seconds, global_cap))), flush=True)


async def run_level(
    url: str, processes: int, level: int, seconds: float, global_cap: bool
) -> float:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            url,
            str(p),
            str(level),
            str(seconds),
            "1" if global_cap else "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for p in range(processes)
    ]
    await asyncio.sleep(1.0)  # let every child connect before the start line
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
    return ops / wall


async def main(args: argparse.Namespace) -> dict[str, Any]:
    schema = None
    tmpdir = None
    if args.backend == "postgres":
        import asyncpg

        base = args.url or os.environ.get("TEST_DATABASE_URL")
        if not base:
            raise SystemExit("postgres: give --url or set TEST_DATABASE_URL")
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(base)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.close()
        url = f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="ledger-bench-")
        url = args.url or f"sqlite:///{Path(tmpdir.name) / 'bench.db'}"
    try:
        async with await open_database(url):  # migrate once
            pass
        rates: dict[str, float] = {}
        for level in LEVELS:
            rates[str(level)] = round(
                await run_level(url, args.processes, level, args.seconds, args.global_cap), 1
            )
            if not args.json:
                print(f"{args.backend} x{args.processes} processes, {level:>2} callers each: "
                      f"{rates[str(level)]:>8.1f} reservations/s")  # fmt: skip
        async with await open_database(url) as db:
            problems = await db.ledger.check_books()
        if problems:
            raise SystemExit(f"the books do not balance after the bench: {problems[:3]}")
    finally:
        if schema is not None:
            import asyncpg

            conn = await asyncpg.connect(base)
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()
        if tmpdir is not None:
            tmpdir.cleanup()
    return {
        "backend": args.backend,
        "processes": args.processes,
        "seconds_per_level": args.seconds,
        "global_cap": args.global_cap,
        "ops_per_s": rates,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main()
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="per concurrency level")
    parser.add_argument("--url", help="database URL (postgres: the base URL for a fresh schema)")
    parser.add_argument(
        "--global-cap",
        action="store_true",
        help="also set a global money cap (every reservation then locks all global stripes)",
    )
    parser.add_argument("--json", action="store_true")
    cli_args = parser.parse_args()
    result = asyncio.run(main(cli_args))
    print(json.dumps(result) if cli_args.json else f"summary: {json.dumps(result)}")
