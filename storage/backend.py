"""The two database backends behind one small interface.

SQL is written once in PostgreSQL style (`$1` placeholders); the SQLite backend rewrites
placeholders to `?1` in one place (`to_sqlite`). Every write runs through `Backend.write(fn)`,
which owns the transaction and its retries, so callers compose several steps (ledger + job)
into ONE transaction by passing the same `Tx` along.

SQLite: one writer connection per process, serialized by an asyncio.Lock, because aiosqlite
coroutines that share a connection would otherwise interleave inside each other's transactions;
every write begins with `BEGIN IMMEDIATE`, so several OS processes on one file queue on the
file lock (busy_timeout) instead of failing late on a snapshot conflict.
PostgreSQL: an asyncpg pool; READ COMMITTED; a transaction that hits a serialization failure
or a deadlock is retried whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import aiosqlite
import asyncpg

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = Mapping[str, Any]

_PLACEHOLDER = re.compile(r"\$(\d+)")
BUSY_TIMEOUT_MS = 30_000
MAX_ATTEMPTS = 20
_BATCH_MAX = 256


class StorageAbort(Exception):
    """A shared write transaction was interrupted; this caller's write did not happen."""


@lru_cache(maxsize=512)
def to_sqlite(sql: str) -> str:
    """`$1` -> `?1` (SQLite's numbered parameters keep the PostgreSQL numbering)."""
    return _PLACEHOLDER.sub(r"?\1", sql)


class Tx(Protocol):
    """One open transaction (or, for reads, one connection in autocommit)."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> None: ...


class Backend(Protocol):
    name: Literal["sqlite", "postgres"]
    # PostgreSQL needs explicit row locks (`FOR UPDATE`, scope lock rows); SQLite's
    # BEGIN IMMEDIATE already makes every write transaction exclusive.
    row_locks: bool
    for_update: str
    skip_locked: str

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def script(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def close(self) -> None: ...


# --------------------------------------------------------------------------- SQLite


class _SqliteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._conn.execute(to_sqlite(sql), args) as cur:
            return list(await cur.fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._conn.execute(to_sqlite(sql), args) as cur:
            row = await cur.fetchone()
            # drain so that an UPDATE ... RETURNING finishes its statement
            await cur.fetchall()
            return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(to_sqlite(sql), args)


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


async def _sqlite_connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    for attempt in range(MAX_ATTEMPTS):
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or attempt == MAX_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    await conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a committed reservation survives a power cut, not only a process crash.
    await conn.execute("PRAGMA synchronous = FULL")
    return conn


class SqliteBackend:
    name: Literal["sqlite", "postgres"] = "sqlite"
    row_locks = False
    for_update = ""
    skip_locked = ""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection | None) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._pending: list[tuple[Callable[[Tx], Awaitable[Any]], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = await _sqlite_connect(path)
        # :memory: is private to its connection, so reads must share the writer there.
        reader = None if path == ":memory:" else await _sqlite_connect(path)
        return cls(writer, reader)

    async def _begin(self) -> None:
        for attempt in range(MAX_ATTEMPTS):
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == MAX_ATTEMPTS - 1:
                    raise
                log.debug("sqlite busy on BEGIN; retry %d", attempt + 1)
                await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` in a write transaction; concurrent writes share one commit (group commit).

        Each `fn` runs inside its own SAVEPOINT, so an exception undoes only that caller's
        statements; the caller gets its result only after the shared COMMIT is durable. One
        fsync per batch instead of one per write is what lets SQLite keep up with many callers.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await asyncio.shield(fut)  # type: ignore[no-any-return]

    async def _drain(self) -> None:
        async with self._write_lock:
            while self._pending:
                batch = self._pending[:_BATCH_MAX]
                del self._pending[:_BATCH_MAX]
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[Callable[[Tx], Awaitable[Any]], Any]]) -> None:
        tx = _SqliteTx(self._writer)
        outcomes: list[tuple[bool, Any]] = []
        try:
            await self._begin()
            if len(batch) == 1:  # no neighbour to protect: skip the savepoint round trips
                try:
                    outcomes.append((True, await batch[0][0](tx)))
                except Exception as exc:
                    await self._writer.execute("ROLLBACK")
                    outcomes.append((False, exc))
            else:
                for fn, _ in batch:
                    await self._writer.execute("SAVEPOINT w")
                    try:
                        result = await fn(tx)
                    except Exception as exc:
                        await self._writer.execute("ROLLBACK TO w")
                        await self._writer.execute("RELEASE w")
                        outcomes.append((False, exc))
                    else:
                        await self._writer.execute("RELEASE w")
                        outcomes.append((True, result))
            if self._writer.in_transaction:
                await self._writer.execute("COMMIT")
        except BaseException as exc:
            if self._writer.in_transaction:
                with contextlib.suppress(Exception):
                    await self._writer.execute("ROLLBACK")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(
                        exc if isinstance(exc, Exception) else StorageAbort("write aborted")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    async def script(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """A write in a transaction of its own (migrations: DDL, no batching)."""
        async with self._write_lock:
            await self._begin()
            try:
                result = await fn(_SqliteTx(self._writer))
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")
            return result

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        if self._reader is None:
            async with self._write_lock:
                return await fn(_SqliteTx(self._writer))
        async with self._read_lock:
            # one read transaction: a consistent snapshot across the statements of `fn`
            await self._reader.execute("BEGIN")
            try:
                return await fn(_SqliteTx(self._reader))
            finally:
                await self._reader.execute("ROLLBACK")

    async def close(self) -> None:
        if self._drainer is not None:
            with contextlib.suppress(Exception):
                await self._drainer
        await self._writer.close()
        if self._reader is not None:
            await self._reader.close()


# --------------------------------------------------------------------------- PostgreSQL


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._conn.fetchrow(sql, *args)  # type: ignore[no-any-return]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)


_RETRYABLE_PG = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


class PostgresBackend:
    name: Literal["sqlite", "postgres"] = "postgres"
    row_locks = True
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresBackend:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, command_timeout=60
        )
        return cls(pool)

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await fn(_PgTx(conn))
            except _RETRYABLE_PG as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                log.debug("postgres %s; retrying the transaction", type(exc).__name__)
                await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

    script = write

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            return await fn(_PgTx(conn))

    async def close(self) -> None:
        await self._pool.close()


def sqlite_path(url: str) -> str:
    """`sqlite:///rel.db` -> 'rel.db'; `sqlite:////abs.db` -> '/abs.db'; `sqlite:///:memory:`."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"bad SQLite URL {url!r}: use sqlite:///relative.db, sqlite:////abs/path.db "
            "or sqlite:///:memory:"
        )
    return rest[1:].split("?", 1)[0]


async def open_backend(url: str, *, pool_max: int = 10) -> Backend:
    if url.startswith("sqlite://"):
        return await SqliteBackend.open(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresBackend.open(url, max_size=pool_max)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///file.db or postgresql://..."
    )


def placeholders(start: int, count: int) -> str:
    """'$start, $start+1, ...' for an IN list of `count` values."""
    return ", ".join(f"${i}" for i in range(start, start + count))


def in_list(values: Sequence[str]) -> str:
    """A literal IN list for trusted constants (enum values), quoted."""
    for v in values:
        if not re.fullmatch(r"[a-z_]+", v):
            raise ValueError(f"not a safe SQL constant: {v!r}")
    return ", ".join(f"'{v}'" for v in values)
