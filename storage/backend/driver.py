"""Running SQLite transaction bodies on the database's own thread.

The bodies are `async def` over `Tx` so that the same code drives asyncpg. Over SQLite every
`Tx` method returns without suspending, so the database thread finishes a body with one
`send(None)` (`run_sync`) - a whole transaction in one hop between threads, instead of one hop
per statement (aiosqlite: ~0.1 ms each, and a reservation is several statements). A body that
really suspends is refused (`SuspendingBody`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from storage.errors import StorageError

T = TypeVar("T")


class SuspendingBody(StorageError):
    """A SQLite transaction body awaited something that really waits (I/O, sleep, a lock)."""


def run_sync(awaitable: Awaitable[T]) -> T:
    """Drive a transaction body to completion on the database thread, without an event loop."""
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


class DbThread:
    """One sqlite3 connection owned by one thread; every call is one hop to that thread."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self, connect: Callable[[str], sqlite3.Connection], path: str) -> None:
        self.conn = await self.call(connect, path)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await self.call(conn.close)
        self._pool.shutdown(wait=False)
