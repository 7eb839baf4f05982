"""The two database backends behind one small interface.

SQL is written once in PostgreSQL style (`$1` placeholders); the SQLite backend rewrites
placeholders to `?1` in one place (`to_sqlite`). Every write runs through `Backend.write(fn)`,
which owns the transaction and its retries, so callers compose several steps (ledger + job)
into ONE transaction by passing the same `Tx` along.

SQLite: a plain `sqlite3` connection owned by ONE dedicated thread (a one-worker executor);
a whole transaction runs on that thread in one hop. The transaction bodies stay `async def`
over `Tx` (the same code drives asyncpg), but the SQLite `Tx` methods never suspend, so the
thread drives a body with `coro.send(None)` (`run_sync`; a body that really suspends is
refused with `SuspendingBody`). Concurrent writes are grouped: one BEGIN IMMEDIATE ... COMMIT
(one fsync) for a batch of callers, each in its own SAVEPOINT. Reads use a second
connection on a second thread, one hop per read. Several OS processes on one file queue on
a flock beside it (`_WriterGate`: immediate hand-over) and on the SQLite write lock (BEGIN
IMMEDIATE + busy_timeout, BUSY retried) instead of failing late.

Why not aiosqlite: it moves EVERY statement across the thread boundary (queue, wake-up,
future: ~0.1 ms each), and a reserve + settle is ~40 statements, so the event loop sat idle
waiting for hops. Measured with bench/ledger.py on this 2-core box (reserve + settle per
second at 1 / 8 / 64 callers, one process): aiosqlite 97 / 559 / 333; one hop per
transaction 524 / 1462 / 1567 (same ledger SQL), ~640 / 1780 / 2900 with the leaner ledger.
Four processes on one file: 195 / 224 / 233 before, ~570 / 1830 / 3800 now (with the
writer gate).

PostgreSQL: an asyncpg pool; READ COMMITTED; a transaction that hits a serialization failure
or a deadlock is retried whole. The pool does not reset sessions on release (a round trip per
transaction; we keep no session state), and `write_one` runs a lone statement in autocommit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

if TYPE_CHECKING:  # imported when a PostgreSQL database is opened: SQLite never pays for it
    import asyncpg

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: BEGIN IMMEDIATE + busy_timeout alone
    fcntl = None  # type: ignore[assignment]

from storage.errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = Mapping[str, Any]

_PLACEHOLDER = re.compile(r"\$(\d+)")
BUSY_TIMEOUT_MS = 30_000
MAX_ATTEMPTS = 20
_BATCH_MAX = 256


class StorageAbort(Exception):
    """A shared write transaction was interrupted; this caller's write did not happen."""


def first_value(row: Row) -> Any:
    """A row's first column: both drivers' rows are also sequences."""
    return cast(Sequence[Any], row)[0]


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
    async def write_one(self, sql: str, *args: Any) -> list[Row]: ...
    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def script(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def close(self) -> None: ...


# --------------------------------------------------------------------------- SQLite


class SuspendingBody(StorageError):
    """A SQLite transaction body awaited something that really waits (I/O, sleep, a lock)."""


def run_sync(awaitable: Awaitable[T]) -> T:
    """Drive a transaction body to completion on the database thread, without an event loop.

    The bodies are `async def` so the same code runs over asyncpg; over SQLite every `Tx`
    method returns without suspending, so one `send(None)` finishes the coroutine.
    """
    it = awaitable.__await__()
    try:
        it.send(None)
    except StopIteration as stop:
        return stop.value
    close = getattr(it, "close", None)
    if close is not None:
        close()
    raise SuspendingBody(
        "a SQLite transaction body suspended (it awaited real I/O, a sleep or a lock); "
        "only Tx calls may be awaited inside backend.write/read/script"
    )


class _SqliteTx:
    """Tx over a plain sqlite3 connection: `async` methods that never suspend."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self._conn.execute(to_sqlite(sql), args).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        # fetchall: an UPDATE ... RETURNING must run to its end before the next statement
        rows = self._conn.execute(to_sqlite(sql), args).fetchall()
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else first_value(row)

    async def execute(self, sql: str, *args: Any) -> None:
        self._conn.execute(to_sqlite(sql), args).fetchall()


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _sqlite_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, cached_statements=512
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        _while_busy(conn, "PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError:
        conn.close()
        raise
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a committed reservation survives a power cut, not only a process crash.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class _DbThread:
    """One sqlite3 connection owned by one thread; every call is one hop to that thread."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self, path: str) -> None:
        self.conn = await self.call(_sqlite_connect, path)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await self.call(conn.close)
        self._pool.shutdown(wait=False)


class _WriterGate:
    """An OS file lock (flock) beside the database, taken around every write transaction.

    SQLite's busy handler polls with growing sleeps (1 ms ... 100 ms), so with several
    processes the write lock often sits free while the next writer sleeps. A blocking flock
    hands over at once (the kernel wakes the next waiter) and is dropped by the kernel when a
    process dies. BEGIN IMMEDIATE + busy_timeout still guard correctness, also against
    writers that do not use the gate (the sqlite3 shell, another program).
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def _while_busy(conn: sqlite3.Connection, sql: str) -> None:
    """Run `sql`, waiting out another process that holds the file (SQLITE_BUSY)."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            conn.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or attempt == MAX_ATTEMPTS - 1:
                raise
            log.debug("sqlite busy on %s; retry %d", sql, attempt + 1)
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))


def _begin_immediate(conn: sqlite3.Connection) -> None:
    _while_busy(conn, "BEGIN IMMEDIATE")


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")


_Outcome = tuple[bool, Any]


def _run_batch(
    conn: sqlite3.Connection,
    gate: contextlib.AbstractContextManager[None],
    fns: list[Callable[[Tx], Awaitable[Any]]],
) -> list[_Outcome]:
    with gate:
        return _run_batch_locked(conn, fns)


def _run_batch_locked(
    conn: sqlite3.Connection, fns: list[Callable[[Tx], Awaitable[Any]]]
) -> list[_Outcome]:
    """Several callers' write transactions in ONE BEGIN IMMEDIATE ... COMMIT (on the DB thread).

    Each body runs in its own SAVEPOINT, so an exception undoes only that caller's statements.
    """
    tx = _SqliteTx(conn)
    outcomes: list[_Outcome] = []
    _begin_immediate(conn)
    try:
        if len(fns) == 1:  # no neighbour to protect: skip the savepoint statements
            try:
                outcomes.append((True, run_sync(fns[0](tx))))
            except Exception as exc:
                conn.execute("ROLLBACK")
                outcomes.append((False, exc))
        else:
            for fn in fns:
                conn.execute("SAVEPOINT w")
                try:
                    result = run_sync(fn(tx))
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE w")
                    outcomes.append((True, result))
        if conn.in_transaction:
            conn.execute("COMMIT")
    except BaseException:
        _rollback_quietly(conn)
        raise
    return outcomes


def _run_script(
    conn: sqlite3.Connection,
    gate: contextlib.AbstractContextManager[None],
    fn: Callable[[Tx], Awaitable[T]],
) -> T:
    with gate:
        return _run_script_locked(conn, fn)


def _run_script_locked(conn: sqlite3.Connection, fn: Callable[[Tx], Awaitable[T]]) -> T:
    _begin_immediate(conn)
    try:
        result = run_sync(fn(_SqliteTx(conn)))
    except BaseException:
        _rollback_quietly(conn)
        raise
    conn.execute("COMMIT")
    return result


def _run_read(conn: sqlite3.Connection, fn: Callable[[Tx], Awaitable[T]]) -> T:
    # one read transaction: a consistent snapshot across the statements of `fn`
    conn.execute("BEGIN")
    try:
        return run_sync(fn(_SqliteTx(conn)))
    finally:
        _rollback_quietly(conn)


class SqliteBackend:
    name: Literal["sqlite", "postgres"] = "sqlite"
    row_locks = False
    for_update = ""
    skip_locked = ""

    def __init__(
        self, writer: _DbThread, reader: _DbThread | None, gate: _WriterGate | None = None
    ) -> None:
        self._writer = writer
        self._gate_fd = gate
        self._gate: contextlib.AbstractContextManager[None] = gate or contextlib.nullcontext()
        # :memory: is private to its connection, so reads share the writer's thread there
        # (between two batches: the thread runs one job at a time).
        self._reader = reader or writer
        self._separate_reader = reader is not None
        self._pending: list[tuple[Callable[[Tx], Awaitable[Any]], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _DbThread("sqlite-writer")
        await writer.open(path)
        reader = gate = None
        if path != ":memory:":
            reader = _DbThread("sqlite-reader")
            try:
                await reader.open(path)
                gate = _WriterGate(path) if fcntl is not None else None
            except BaseException:
                await writer.close()
                await reader.close()
                raise
        return cls(writer, reader, gate)

    def _conn(self, thread: _DbThread) -> sqlite3.Connection:
        if thread.conn is None:
            raise StorageError("the database is closed")
        return thread.conn

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` in a write transaction; concurrent writes share one commit (group commit).

        The caller gets its result only after the shared COMMIT is durable. One fsync per
        batch instead of one per write is what lets SQLite keep up with many callers.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        # Batches run one at a time; callers arriving meanwhile form the next batch.
        while self._pending:
            batch = self._pending[:_BATCH_MAX]
            del self._pending[:_BATCH_MAX]
            fns = [fn for fn, _ in batch]
            try:
                outcomes = await self._writer.call(
                    _run_batch, self._conn(self._writer), self._gate, fns
                )
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StorageAbort("write interrupted; outcome unknown"))
                raise
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    async def write_one(self, sql: str, *args: Any) -> list[Row]:
        """One statement as a write transaction of its own; its rows."""
        return await self.write(lambda tx: tx.fetch(sql, *args))

    async def script(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """A write in a transaction of its own (migrations: DDL, no batching)."""
        return await self._writer.call(_run_script, self._conn(self._writer), self._gate, fn)

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        return await self._reader.call(_run_read, self._conn(self._reader), fn)

    async def close(self) -> None:
        if self._drainer is not None:
            with contextlib.suppress(Exception):
                await self._drainer
        await self._writer.close()
        if self._separate_reader:
            await self._reader.close()
        if self._gate_fd is not None:
            self._gate_fd.close()


# --------------------------------------------------------------------------- PostgreSQL


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's default reset runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` - one more round trip per transaction. We leave no session state behind
    (advisory locks are transaction-scoped, no LISTEN, no SET), so there is nothing to reset;
    asyncpg still rolls back a transaction left open.
    """


class PostgresBackend:
    name: Literal["sqlite", "postgres"] = "postgres"
    row_locks = True
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool) -> None:
        import asyncpg

        self._pool = pool
        self._retryable = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresBackend:
        import asyncpg

        extra: dict[str, Any] = {}
        # `reset=` arrived in asyncpg 0.30; older versions keep their default reset query
        if "reset" in inspect.signature(asyncpg.create_pool).parameters:
            extra["reset"] = _keep_session
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, command_timeout=60, **extra
        )
        return cls(pool)

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await fn(_PgTx(conn))
            except self._retryable as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                log.debug("postgres %s; retrying the transaction", type(exc).__name__)
                await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

    script = write

    async def write_one(self, sql: str, *args: Any) -> list[Row]:
        """One statement in autocommit: no BEGIN/COMMIT round trips (PostgreSQL runs a lone
        statement atomically, data-modifying CTEs included)."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._pool.acquire() as conn:
                    return await _PgTx(conn).fetch(sql, *args)
            except self._retryable as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                log.debug("postgres %s; retrying the statement", type(exc).__name__)
                await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

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
