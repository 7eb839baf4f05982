"""PostgreSQL through an asyncpg pool, READ COMMITTED.

A transaction that hits a serialization failure or a deadlock is retried whole. The pool does
not reset sessions on release (a round trip per transaction; we keep no session state), and
`write_one` runs a lone statement in autocommit: no BEGIN/COMMIT round trips.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from storage.backend.protocol import MAX_ATTEMPTS, Dialect, Row, Tx

if TYPE_CHECKING:  # imported when a PostgreSQL database is opened: SQLite never pays for it
    import asyncpg

log = logging.getLogger(__name__)
T = TypeVar("T")


class PgTx:
    dialect: Dialect = "postgres"

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

    async def count(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(sql, *args)  # "INSERT 0 3", "UPDATE 2"
        return int(status.rsplit(" ", 1)[-1])


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's default reset runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` - one more round trip per transaction. We leave no session state behind
    (advisory locks are transaction-scoped, no LISTEN, no SET), so there is nothing to reset;
    asyncpg still rolls back a transaction left open.
    """


async def _backoff(attempt: int, exc: BaseException, what: str) -> None:
    if attempt == MAX_ATTEMPTS - 1:
        raise exc
    log.debug("postgres %s; retrying the %s", type(exc).__name__, what)
    await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))


class PostgresBackend:
    name: Dialect = "postgres"
    row_locks = True
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool) -> None:
        import asyncpg

        self._pool = pool
        self._retryable = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
        # what was retried, by error (a deadlock means a lock order was broken: tests check)
        self.retried: Counter[str] = Counter()

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
                    return await fn(PgTx(conn))
            except self._retryable as exc:
                self.retried[type(exc).__name__] += 1
                await _backoff(attempt, exc, "transaction")
        raise AssertionError("unreachable")

    script = write

    async def write_one(self, sql: str, *args: Any) -> list[Row]:
        """One statement in autocommit (PostgreSQL runs a lone statement atomically)."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._pool.acquire() as conn:
                    return await PgTx(conn).fetch(sql, *args)
            except self._retryable as exc:
                self.retried[type(exc).__name__] += 1
                await _backoff(attempt, exc, "statement")
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            return await fn(PgTx(conn))

    async def close(self) -> None:
        await self._pool.close()
