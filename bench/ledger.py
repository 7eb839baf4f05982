"""Ledger throughput: reservations per second (a reserve and its settle), and the CPU each
costs, beside the machine's ceiling for the same shape of work measured in the same run.

    python bench/ledger.py [--backend sqlite|postgres] [--processes N] [--global-cap]
                           [--server-share N] [--random-keys] [--ceiling] [--seconds S]
                           [--repeat R] [--json]
    python bench/ledger.py --all [--seconds S] [--repeat R]     # the README table

Workload: every process runs 1, 8 and 64 concurrent callers; a caller reserves $0.20 and then
settles it (every fourth settle is partial, $0.15, so the rest is released), in a loop. The
bot's default caps are in force (the field defaults of bot/config.py: $5 / $50 per user per
day / month, $50 / $500 per server, 2 clips at once per user and 10 per server, 20 clips per
user per hour; with --global-cap also a bot-wide $1,000,000 per day and $10,000,000 per
month). So that no count cap refuses, each caller is a user of its own that it replaces after
20 clips (the hourly cap; $4 of the $5 a day), on a server of its own that it replaces after
25 clips ($5 of the server's $50 a day); --server-share N puts N callers on each server (at
most 10 at once, the server cap), a stress no real server sees: a server whose members run
10 clips at once starts one every few seconds, not thousands. Every refusal is counted and
printed: there should be none. New users and servers exercise the first reservation of a
scope, as real traffic does. Reservation keys are what the bot writes for Discord, its main
front door: "discord:" and the interaction id, a snowflake (milliseconds since Discord's
epoch, then worker, process and an increment), so keys arrive in time order and a batch of
holds lands at the end of the key index. --random-keys uses keys in no order instead (the
CLI's random ids; Slack's view ids are not ordered either): each hold of a batch then lands
on its own page of the key index, which SQLite writes to the WAL at every commit.

The ceiling (--ceiling) is the minimal loop of the same shape on the same backend, durability
(SQLite WAL + synchronous=FULL through the project's own group commit; PostgreSQL
synchronous_commit=on, one round trip in autocommit per step), processes and callers: per
operation two write transactions, each one conditional `UPDATE counters SET v = v + amount
WHERE id = caller AND v + amount <= cap RETURNING v` and one `INSERT` into a log table (on
PostgreSQL one PL/pgSQL call runs both, as the ledger runs its steps; --pg-ceiling statement
runs them as one statement instead, which measures about the same). Ledger and ceiling alternate,
--repeat times, so both see the same background load; each figure is the median, with the
ratio of the medians and, in brackets, the lowest and highest ratio of one repetition.

CPU per operation counts the bench processes and, on PostgreSQL, the server processes of
their connections (read from /proc when the server runs on this machine): on a machine
shared with other work it is much steadier than throughput.

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bot.caps  # noqa: E402
from bot.config import Settings  # noqa: E402
from storage import LimitDefaults, QuotaExceeded, Scopes, open_database  # noqa: E402
from storage.backend import Tx, open_backend  # noqa: E402

LEVELS = (1, 8, 64)
AMOUNT = 200_000  # $0.20
PARTIAL = 150_000
USER_CLIPS = 20  # a caller's user is replaced after this many (the default hourly cap)
SERVER_CLIPS = 25  # per caller, before its group moves to a new server ($40 of $50 a day)
GLOBAL_DAILY = 1_000_000 * 10**6
GLOBAL_MONTHLY = 10_000_000 * 10**6


def limit_defaults(global_cap: bool) -> LimitDefaults:
    """The bot's own default caps (the field defaults of bot.config.Settings, not the
    environment: model_construct reads no environment), plus a global money cap when asked
    for."""
    defaults = bot.caps.limit_defaults(Settings.model_construct())
    if not global_cap:
        return defaults
    glob = replace(defaults.global_, daily_micros=GLOBAL_DAILY, monthly_micros=GLOBAL_MONTHLY)
    return replace(defaults, global_=glob)


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
# PostgreSQL: the step as one round trip in autocommit, like the ledger's own steps: a PL/pgSQL
# call running the UPDATE and then the INSERT (the reference), or - stricter - both
# in one statement (a data-modifying WITH), with --pg-ceiling statement.
_STEP_PG = {
    "function": "SELECT bench_step($1, $2, $3, $4, $5)",
    "statement": (
        "WITH u AS (UPDATE bench_counters SET v = v + $2 WHERE id = $1 AND v + $2 <= $3"
        " RETURNING v) INSERT INTO bench_log (at, key, amount) SELECT $4, $5, $2 FROM u"
        " RETURNING amount"
    ),
}
_STEP_FUNCTION = """CREATE OR REPLACE FUNCTION bench_step(
    p_id TEXT, p_amount BIGINT, p_cap BIGINT, p_at DOUBLE PRECISION, p_key TEXT
) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    counted BIGINT;
BEGIN
    UPDATE bench_counters SET v = v + p_amount WHERE id = p_id AND v + p_amount <= p_cap
    RETURNING v INTO counted;
    IF counted IS NOT NULL THEN
        INSERT INTO bench_log (at, key, amount) VALUES (p_at, p_key, p_amount);
    END IF;
    RETURN counted;
END
$$"""
_CEILING_CAP = 10**15


async def create_ceiling_tables(url: str) -> None:
    backend = await open_backend(url)
    try:

        async def run(tx: Tx) -> None:
            for sql in _CEILING_TABLES:
                await tx.execute(sql.format(id_pk=_ID_PK[backend.name]))
            if backend.name == "postgres":
                await tx.execute(_STEP_FUNCTION)

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
    server_share: int  # callers sharing one server at a time (the server concurrency cap is 10)
    pg_ceiling: str  # "function" or "statement"
    tag: str  # unique per run, so keys and scopes never repeat across runs
    random_keys: bool = False


DISCORD_EPOCH_MS = 1_420_070_400_000  # 2015-01-01 UTC, where Discord's ids count from


def ledger_key(run: Run, seq: int) -> str:
    """The reservation's key as the bot writes it for Discord (bot/service.py: "discord:"
    and the interaction id, a snowflake), or a random one (--random-keys)."""
    if run.random_keys:
        return f"cli:{run.tag}{uuid.uuid4().hex}"
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return f"discord:{run.tag}{(ms << 22) | ((run.proc & 31) << 17) | (seq & 4095)}"


def caller_scopes(run: Run, caller: int, n: int) -> Scopes:
    user = f"u{run.tag}-{run.proc}-{caller}-{n // USER_CLIPS}"
    server = f"s{run.tag}-{run.proc}-{caller // run.server_share}-{n // SERVER_CLIPS}"
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
    pids = await server_pids(db.raw if run.mode == "ledger" else backend, pool)
    try:
        # the barrier: the parent writes one line to every child at once
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.time()
        deadline = start + run.seconds
        cpu0, server0 = time.process_time(), sum(max(0.0, _cpu_of(p)) for p in pids)

        seq = 0  # the interaction ids' increment, per process

        async def ledger_caller(t: int) -> None:
            nonlocal done, refused, seq
            n = 0
            while time.time() < deadline:
                seq += 1
                key = ledger_key(run, seq)
                try:
                    await db.ledger.reserve(key, caller_scopes(run, t, n), AMOUNT, model="bench")
                except QuotaExceeded:
                    refused += 1
                else:
                    await db.ledger.settle(key, PARTIAL if n % 4 == 0 else None)
                    done += 1
                n += 1

        async def ceiling_caller(t: int) -> None:
            nonlocal done, seq
            cid, n = ids[t], 0
            while time.time() < deadline:
                seq += 1
                key = ledger_key(run, seq)
                for amount in (AMOUNT, -AMOUNT):
                    if backend.name == "postgres":
                        rows = await backend.write_one(
                            _STEP_PG[run.pg_ceiling], cid, amount, _CEILING_CAP, time.time(), key
                        )
                        rows = [r for r in rows if r[0] is not None]
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
        cpu = time.process_time() - cpu0
        server = sum(max(0.0, _cpu_of(p)) for p in pids) - server0
    finally:
        await closer()
    return {"ops": done, "refused": refused, "start": start, "end": end, "cpu_s": cpu + server}


async def server_pids(backend: Any, connections: int) -> list[int]:
    """PostgreSQL: the pool's server processes, so that their CPU time counts too (a server on
    this machine; elsewhere only this process's CPU is counted)."""
    if backend.name != "postgres":
        return []
    pids = await asyncio.gather(
        *(
            backend.read(lambda tx: tx.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)"))
            for _ in range(connections)
        )
    )
    return sorted({int(p) for p in pids if _cpu_of(int(p)) >= 0})


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (Linux /proc); -1 when not here."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


async def _ceiling_step(tx: Tx, cid: str, amount: int, key: str) -> list[Any]:
    rows = await tx.fetch(_STEP, cid, amount, _CEILING_CAP)
    await tx.execute(_LOG, time.time(), key, amount)
    return rows


def child_main() -> None:
    run = Run(**json.loads(sys.argv[2]))
    print(json.dumps(asyncio.run(child_run(run))), flush=True)


# --------------------------------------------------------------------------- the parent


async def run_level(processes: int, run: Run) -> tuple[float, int, float]:
    """Operations per second over all processes (first start to last end); refusals; CPU
    microseconds per operation (the bench processes and their PostgreSQL server processes)."""
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
    cpu = sum(r["cpu_s"] for r in results) / max(ops, 1) * 1e6
    return ops / wall, sum(r["refused"] for r in results), cpu


@dataclass
class Series:
    """One figure measured several times, ledger and ceiling alternating."""

    ledger: list[float] = field(default_factory=list)
    ceiling: list[float] = field(default_factory=list)

    def summary(self, higher_is_better: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ledger": round(statistics.median(self.ledger), 1),
            "ledger_runs": [round(x, 1) for x in self.ledger],
        }
        if self.ceiling:
            # the ratio says how close the ledger comes to the ceiling: 1.0 = as fast
            pairs = list(zip(self.ledger, self.ceiling, strict=True))
            ratios = [a / b if higher_is_better else b / a for a, b in pairs]
            med_l, med_c = statistics.median(self.ledger), statistics.median(self.ceiling)
            out.update(
                ceiling=round(med_c, 1),
                ceiling_runs=[round(x, 1) for x in self.ceiling],
                ratio=round(med_l / med_c if higher_is_better else med_c / med_l, 3),
                ratio_min=round(min(ratios), 3),
                ratio_max=round(max(ratios), 3),
            )
        return out

    def cell(self, higher_is_better: bool) -> str:
        s = self.summary(higher_is_better)
        if "ceiling" not in s:
            return f"{s['ledger']:,.0f}"
        spread = f", {s['ratio_min']:.2f}–{s['ratio_max']:.2f}" if len(self.ledger) > 1 else ""
        return f"{s['ledger']:,.0f} / {s['ceiling']:,.0f} ({s['ratio']:.2f}{spread})"


@dataclass
class Figures:
    rate: Series = field(default_factory=Series)  # reserve + settle per second
    cpu: Series = field(default_factory=Series)  # CPU microseconds per reserve + settle
    refused: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "ops_per_s": self.rate.summary(True),
            "cpu_us_per_op": self.cpu.summary(False),
            "refused": self.refused,
        }


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


@dataclass(frozen=True)
class Config:
    backend: str
    processes: int
    global_cap: bool = False
    server_share: int = 1
    pg_ceiling: str = "function"
    random_keys: bool = False

    def label(self) -> str:
        name = "SQLite" if self.backend == "sqlite" else "PostgreSQL"
        procs = "1 process" if self.processes == 1 else f"{self.processes} processes"
        text = f"{name}, {procs}" + (", global money cap" if self.global_cap else "")
        if self.server_share > 1:
            text += f", {self.server_share} callers per server"
        if self.random_keys:
            text += ", keys in no order"
        if self.backend == "postgres" and self.pg_ceiling != "function":
            text += f" (ceiling: one {self.pg_ceiling})"
        return text


# The README table: both backends, 1 and 4 processes, with and without a global money cap;
# then the same load concentrated on few servers (a stress no real server sees), and SQLite
# with keys in no order.
ALL = [
    *(Config(b, p, g) for b in ("sqlite", "postgres") for p in (1, 4) for g in (False, True)),
    Config("sqlite", 1, server_share=8),
    Config("postgres", 4, server_share=8),
    Config("sqlite", 1, True, random_keys=True),
    Config("sqlite", 4, True, random_keys=True),
]


async def measure(
    cfg: Config, *, ceiling: bool, seconds: float, repeat: int, url: str | None, say: Any,
) -> dict[int, Figures]:  # fmt: skip
    db_url, handle = await fresh_url(cfg.backend, url)
    try:
        async with await open_database(db_url) as db:  # migrate once, up front
            pass
        if ceiling:
            await create_ceiling_tables(db_url)
        out = {level: Figures() for level in LEVELS}
        for r in range(repeat):
            for level in LEVELS:
                for mode in ("ledger", "ceiling") if ceiling else ("ledger",):
                    run = Run(
                        url=db_url, mode=mode, proc=0, level=level, seconds=seconds,
                        global_cap=cfg.global_cap, server_share=cfg.server_share,
                        pg_ceiling=cfg.pg_ceiling, tag=f"{r}{mode[0]}{level}",
                        random_keys=cfg.random_keys,
                    )  # fmt: skip
                    rate, refused, cpu = await run_level(cfg.processes, run)
                    figs = out[level]
                    getattr(figs.rate, mode).append(rate)
                    getattr(figs.cpu, mode).append(cpu)
                    figs.refused += refused
                    say(f"  {cfg.label()}: {level:>2} callers, run {r + 1}/{repeat}, {mode}:"
                        f" {rate:,.0f}/s, {cpu:,.0f} us CPU per operation"
                        + (f" ({refused} refused)" if refused else ""))  # fmt: skip
        async with await open_database(db_url) as db:
            problems = await db.ledger.check_books()
        if problems:
            raise SystemExit(f"the books do not balance after the bench: {problems[:3]}")
        return out
    finally:
        await cleanup(handle)


def markdown(rows: list[tuple[str, dict[int, Figures]]], ceiling: bool) -> str:
    header = " | ".join(f"{n} caller{'s' if n > 1 else ''}" for n in LEVELS)
    what = " / ceiling (ratio, lowest–highest)" if ceiling else ""
    out = []
    for title, pick, higher in (
        (f"reserve + settle per second: ledger{what}", "rate", True),
        (f"CPU µs per reserve + settle: ledger{what}", "cpu", False),
    ):
        out += [f"| {title} | {header} |", "|---|" + "---|" * len(LEVELS)]
        for label, figs in rows:
            cells = [getattr(figs[n], pick).cell(higher) for n in LEVELS]
            refused = sum(figs[n].refused for n in LEVELS)
            note = f" ({refused} refused)" if refused and pick == "rate" else ""
            out.append(f"| {label}{note} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


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
        configs, ceiling = ALL, True
    else:
        cfg = Config(args.backend, args.processes, args.global_cap, args.server_share)
        configs = [replace(cfg, pg_ceiling=args.pg_ceiling, random_keys=args.random_keys)]
        ceiling = args.ceiling
    rows = []
    results = []
    for cfg in configs:
        figs = await measure(
            cfg, ceiling=ceiling, seconds=args.seconds, repeat=args.repeat, url=args.url, say=say
        )
        rows.append((cfg.label(), figs))
        results.append({**cfg.__dict__, "levels": {str(n): figs[n].summary() for n in LEVELS}})
    if not args.json:
        print(markdown(rows, ceiling))
        print(conditions(args))
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
        "--server-share", type=int, default=1, metavar="N",
        help="callers sharing one server at a time (default 1; at most 10, the server cap)",
    )  # fmt: skip
    parser.add_argument(
        "--ceiling", action="store_true", help="also measure the minimal same-shape loop"
    )
    parser.add_argument(
        "--random-keys", action="store_true",
        help="reservation keys in no order (the CLI's) instead of Discord's interaction ids",
    )  # fmt: skip
    parser.add_argument(
        "--pg-ceiling", choices=["function", "statement"], default="function",
        help="PostgreSQL: the ceiling's step as one PL/pgSQL call running the UPDATE and the "
        "INSERT (default, as the ledger runs its steps), or as one statement (stricter)",
    )  # fmt: skip
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
