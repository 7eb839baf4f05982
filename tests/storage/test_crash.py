"""Crash test: a child process SIGKILLs itself before its N-th SQL statement, for every N of a
ledger + job scenario. After a restart that retries the whole scenario, the books balance,
every key has exactly the recorded outcome, and nothing is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage import (
    Database,
    InvalidTransition,
    JobStatus,
    LimitDefaults,
    Limits,
    NewJob,
    QuotaExceeded,
    Scopes,
    open_database,
)
from tests.fixtures_db import START, create_schema, drop_schema, postgres_base_url, with_search_path

ROOT = Path(__file__).resolve().parents[2]
U = Scopes("cli:u", "discord:s")
DEFAULTS = LimitDefaults(user=Limits(daily_micros=1_000, concurrent_jobs=3, jobs_per_hour=10))
JOB = NewJob(
    id="j1", platform="cli", event_id="e1", user_id=U.user_id, server_id=U.server_id,
    model="wan", provider="wavespeed", params={}, prompt="p", image_ref="img", cost_micros=200,
)  # fmt: skip
EXPECTED_ENTRIES = Counter(
    [
        ("reserve", "a", 400), ("settle", "a", 300), ("reserve", "b", 500), ("refuse", "c", 400),
        ("void", "b", 500), ("reserve", "job-j1", 200), ("settle", "job-j1", 200),
        ("reserve", "d", 100),
    ]
)  # fmt: skip


async def scenario(db: Database) -> None:
    """Idempotent from any point: every step is keyed, so a rerun finishes what a crash cut."""
    await db.ledger.reserve("a", U, 400, model="wan")
    await db.ledger.settle("a", 300)
    await db.ledger.reserve("b", U, 500)
    with pytest.raises(QuotaExceeded) as info:
        await db.ledger.reserve("c", U, 400)
    assert info.value.refusal.used == 800
    await db.ledger.void("b")
    created = await db.jobs.create_reserved(JOB, U, ledger_key="job-j1")
    if created.job.status == JobStatus.RESERVED:
        with contextlib.suppress(InvalidTransition):
            await db.jobs.transition(
                "j1", JobStatus.COMPLETED, expect={JobStatus.RESERVED}, ledger="settle"
            )
    await db.ledger.reserve("d", U, 100)


def install_crash_hook(crash_at: int) -> list[int]:
    """Count every SQL statement; SIGKILL this process right before statement `crash_at`."""
    from storage import backend

    count = [0]

    def wrap(orig: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def hooked(self: Any, *args: Any) -> Any:
            count[0] += 1
            if count[0] == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return await orig(self, *args)

        return hooked

    for cls in (backend.SqliteTx, backend.PgTx):
        for name in ("fetch", "fetchrow", "fetchval", "execute", "count"):
            setattr(cls, name, wrap(getattr(cls, name)))
    return count


def child(url: str, crash_at: int, count_file: str) -> None:
    """Runs in a forked child (forkserver, modules preloaded: no interpreter start per N)."""

    async def main() -> int:
        db = await open_database(url, defaults=DEFAULTS, clock=lambda: START)
        count = install_crash_hook(crash_at)  # after migrations: count only the scenario
        async with db:
            await scenario(db)
        return count[0]

    try:
        Path(count_file).write_text(str(asyncio.run(main())))
    except BaseException:
        import traceback

        Path(count_file).write_text(traceback.format_exc())
        raise


def fork_server() -> None:
    """A tiny fork server: modules are imported once, then each request forks one child.

    Reads "URL N COUNT_FILE" lines on stdin; answers "N EXITCODE" (negative = killed by signal).
    """
    for line in sys.stdin:
        url, n, count_file = line.split()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                child(url, int(n), count_file)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(n, os.waitstatus_to_exitcode(status), flush=True)


class ForkServer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> ForkServer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from tests.storage.test_crash import fork_server; fork_server()",
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def run(self, url: str, crash_at: int, count_file: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{url} {crash_at} {count_file}\n".encode())
        await self.proc.stdin.drain()
        n, code = (await self.proc.stdout.readline()).split()
        assert int(n) == crash_at
        return int(code)

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()


async def verify_after_restart(url: str) -> None:
    async with await open_database(url, defaults=DEFAULTS, clock=lambda: START) as db:
        await scenario(db)  # the restart retries everything
        await scenario(db)  # and a second retry changes nothing
        entries = Counter((e.kind, e.key, e.amount_micros) for e in await db.ledger.entries())
        assert entries == EXPECTED_ENTRIES
        assert await db.ledger.check_books() == []
        status = {k: (await db.ledger.get(k)) for k in ("a", "b", "d", "job-j1")}
        assert {k: (r.status if r else None) for k, r in status.items()} == {
            "a": "settled", "b": "voided", "d": "held", "job-j1": "settled",
        }  # fmt: skip
        assert await db.ledger.get("c") is None and await db.ledger.get_refusal("c") is not None
        job = await db.jobs.get("j1")
        assert job is not None and job.status == JobStatus.COMPLETED
        assert [e.to_status for e in await db.jobs.history("j1")] == [
            JobStatus.RESERVED,
            JobStatus.COMPLETED,
        ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_sigkill_at_every_statement(backend: str, tmp_path: Path) -> None:
    base = postgres_base_url() if backend == "postgres" else None
    schemas: list[str] = []
    servers: list[ForkServer] = []

    async def fresh_url(n: int) -> str:
        if base is None:
            return f"sqlite:///{tmp_path / f'crash{n}.db'}"
        schema = await create_schema(base)
        schemas.append(schema)
        return with_search_path(base, schema)

    try:
        servers.extend([await ForkServer.start() for _ in range(3)])
        idle: asyncio.Queue[ForkServer] = asyncio.Queue()
        for server in servers:
            idle.put_nowait(server)
        url0 = await fresh_url(0)
        code = await servers[0].run(url0, 0, tmp_path / "count")
        assert code == 0
        total = int((tmp_path / "count").read_text())
        assert total > 10  # the hook counts (PostgreSQL runs each plain step as one call)
        await verify_after_restart(url0)

        async def one(n: int) -> None:
            server = await idle.get()
            try:
                url = await fresh_url(n)
                open_db = await open_database(url)  # migrated before the child starts
                await open_db.close()
                code = await server.run(url, n, tmp_path / f"count{n}")
            finally:
                idle.put_nowait(server)
            if code != -signal.SIGKILL:
                out = (tmp_path / f"count{n}").read_text()
                raise AssertionError(f"crash at {n}: exit code {code}: {out}")
            try:
                await verify_after_restart(url)
            except AssertionError as exc:
                raise AssertionError(f"after a crash before statement {n}: {exc}") from exc

        results = await asyncio.gather(
            *(one(n) for n in range(1, total + 1)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
    finally:
        for server in servers:
            await server.stop()
        if base is not None:
            for schema in schemas:
                await drop_schema(base, schema)
