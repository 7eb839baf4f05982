"""Group commit for SQLite: the write transactions of many callers share one COMMIT (one fsync).

Callers queue their bodies (`GroupCommit.write`); one drainer task hands the queue to the
writer thread as a batch: BEGIN IMMEDIATE, each body in its own SAVEPOINT (an exception undoes
only that caller's statements), COMMIT. A caller gets its result only once the shared COMMIT
is durable. Callers arriving meanwhile form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from storage.backend.driver import DbThread, run_sync
from storage.backend.locking import begin_immediate, rollback_quietly
from storage.backend.protocol import StorageAbort, Tx
from storage.errors import StorageError

T = TypeVar("T")
Body = Callable[[Tx], Awaitable[Any]]
_Outcome = tuple[bool, Any]
BATCH_MAX = 256


class GroupCommit:
    """The queue of write bodies in front of one writer thread."""

    def __init__(
        self,
        thread: DbThread,
        gate: contextlib.AbstractContextManager[None],
        make_tx: Callable[[sqlite3.Connection], Tx],
    ) -> None:
        self._thread = thread
        self._gate = gate
        self._make_tx = make_tx
        self._pending: list[tuple[Body, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:BATCH_MAX]
            del self._pending[:BATCH_MAX]
            fns = [fn for fn, _ in batch]
            conn = self._thread.conn
            try:
                if conn is None:
                    raise StorageError("the database is closed")
                outcomes = await self._thread.call(self._run, conn, fns)
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

    async def wait_idle(self) -> None:
        if self._drainer is not None:
            with contextlib.suppress(Exception):
                await self._drainer

    def _run(self, conn: sqlite3.Connection, fns: list[Body]) -> list[_Outcome]:
        """On the writer thread: the whole batch in one transaction, under the writer gate."""
        with self._gate:
            return run_batch(conn, self._make_tx(conn), fns)


def run_batch(conn: sqlite3.Connection, tx: Tx, fns: list[Body]) -> list[_Outcome]:
    """Several callers' write transactions in ONE BEGIN IMMEDIATE ... COMMIT."""
    outcomes: list[_Outcome] = []
    begin_immediate(conn)
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
        rollback_quietly(conn)
        raise
    return outcomes
