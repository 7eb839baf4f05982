"""SQLite: a plain `sqlite3` connection per thread - one writer, one reader.

Writes go through group commit (`group_commit.py`) on the writer thread; reads run on a second
connection on a second thread, one hop per read. WAL with `synchronous = FULL`: a committed
reservation survives a power cut, not only a process crash. Several processes on one file
queue on the writer gate (`locking.py`).

Why not aiosqlite: it moves EVERY statement across the thread boundary (queue, wake-up,
future: ~0.1 ms each), so the event loop sat idle waiting for hops. Measured with
bench/ledger.py on a 2-core box (reserve + settle per second at 1 / 8 / 64 callers, one
process): aiosqlite 97 / 559 / 333; one hop per transaction 524 / 1462 / 1567 (same ledger SQL).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from storage.backend.driver import DbThread, run_sync
from storage.backend.group_commit import GroupCommit
from storage.backend.locking import (
    BUSY_TIMEOUT_MS,
    HAS_FLOCK,
    WriterGate,
    begin_immediate,
    rollback_quietly,
    while_busy,
)
from storage.backend.protocol import Dialect, Row, Tx, first_value
from storage.errors import StorageError

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def to_sqlite(sql: str) -> str:
    """`$1` -> `?1` (SQLite's numbered parameters keep the PostgreSQL numbering)."""
    return _PLACEHOLDER.sub(r"?\1", sql)


class SqliteTx:
    """Tx over a plain sqlite3 connection: `async` methods that never suspend."""

    __slots__ = ("_conn",)
    dialect: Dialect = "sqlite"

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

    async def count(self, sql: str, *args: Any) -> int:
        # total_changes, not rowcount: sqlite3 leaves rowcount at -1 for a write led by WITH
        before = self._conn.total_changes
        self._conn.execute(to_sqlite(sql), args).fetchall()
        return self._conn.total_changes - before


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, cached_statements=512
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        while_busy(conn, "PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError:
        conn.close()
        raise
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _run_script(
    conn: sqlite3.Connection,
    gate: contextlib.AbstractContextManager[None],
    fn: Callable[[Tx], Awaitable[T]],
) -> T:
    with gate:
        begin_immediate(conn)
        try:
            result = run_sync(fn(SqliteTx(conn)))
        except BaseException:
            rollback_quietly(conn)
            raise
        conn.execute("COMMIT")
        return result


def _run_read(conn: sqlite3.Connection, fn: Callable[[Tx], Awaitable[T]]) -> T:
    # one read transaction: a consistent snapshot across the statements of `fn`
    conn.execute("BEGIN")
    try:
        return run_sync(fn(SqliteTx(conn)))
    finally:
        rollback_quietly(conn)


class SqliteBackend:
    name: Dialect = "sqlite"
    row_locks = False
    for_update = ""
    skip_locked = ""

    def __init__(self, writer: DbThread, reader: DbThread | None, gate: WriterGate | None) -> None:
        self._writer = writer
        self._gate_fd = gate
        self._gate: contextlib.AbstractContextManager[None] = gate or contextlib.nullcontext()
        # :memory: is private to its connection, so reads share the writer's thread there
        # (between two batches: the thread runs one job at a time).
        self._reader = reader or writer
        self._separate_reader = reader is not None
        self._commits = GroupCommit(writer, self._gate, SqliteTx)

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = DbThread("sqlite-writer")
        await writer.open(connect, path)
        reader = gate = None
        if path != ":memory:":
            reader = DbThread("sqlite-reader")
            try:
                await reader.open(connect, path)
                gate = WriterGate(path) if HAS_FLOCK else None
            except BaseException:
                await writer.close()
                await reader.close()
                raise
        return cls(writer, reader, gate)

    def _conn(self, thread: DbThread) -> sqlite3.Connection:
        if thread.conn is None:
            raise StorageError("the database is closed")
        return thread.conn

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` in a write transaction; concurrent writes share one commit (group commit)."""
        return await self._commits.write(fn)

    async def write_one(self, sql: str, *args: Any) -> list[Row]:
        """One statement as a write transaction of its own; its rows."""
        return await self.write(lambda tx: tx.fetch(sql, *args))

    async def script(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """A write in a transaction of its own (migrations: DDL, no batching)."""
        return await self._writer.call(_run_script, self._conn(self._writer), self._gate, fn)

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        return await self._reader.call(_run_read, self._conn(self._reader), fn)

    async def close(self) -> None:
        await self._commits.wait_idle()
        await self._writer.close()
        if self._separate_reader:
            await self._reader.close()
        if self._gate_fd is not None:
            self._gate_fd.close()
