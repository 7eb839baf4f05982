"""Waking the job runners of every process when a job becomes due before its time (a
provider callback, a cancel).

On PostgreSQL a callback received by one `web` process must reach the runner that holds the
job's lease in another process: `NOTIFY` on a channel named after the schema (so two
deployments, or two test schemas, in one database do not wake each other), and one dedicated
`LISTEN` connection per process. A notification is only a hint: the job's row already says it
is due, so a lost notification (a dropped listener connection) costs at most the runner's
periodic look, and the listener wakes its runner once after reconnecting.

On SQLite the wake-up is in-process only; another process on the same file notices within
its periodic look (a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from storage.backend import Backend

log = logging.getLogger(__name__)

# Server-side, so that publisher and listener compute the same name from their search_path.
CHANNEL_SQL = "'animatebot_' || left(md5(current_schema()), 16)"
NOTIFY_SQL = f"SELECT pg_notify({CHANNEL_SQL}, $1)"
RECONNECT_S = (0.5, 30.0)  # first and longest wait before reconnecting a lost listener


class Wakeups:
    """In-process wake-ups (SQLite): `poke` calls every subscriber now."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[], None]] = []

    def subscribe(self, fn: Callable[[], None]) -> None:
        self._subscribers.append(fn)

    def _deliver(self) -> None:
        for fn in self._subscribers:
            try:
                fn()
            except Exception:  # a subscriber's bug must not stop the others
                log.exception("wake-up subscriber failed")

    def poke(self) -> None:
        """Something is due now: wake this process's runner (and, on PostgreSQL, the others)."""
        self._deliver()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class PostgresWakeups(Wakeups):
    """LISTEN on one dedicated connection; `poke` also NOTIFYs the other processes."""

    def __init__(self, url: str, backend: Backend) -> None:
        super().__init__()
        self._url = url
        self._backend = backend
        self._conn: asyncpg.Connection | None = None
        self._channel = ""
        self._closing = False
        self._keeper: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        # sent with our own pokes: our LISTEN connection hears them too, and poke has already
        # woken this process's runner
        self._token = uuid.uuid4().hex

    async def start(self) -> None:
        if self._keeper is not None:
            return
        await self._connect()  # the first connection fails loudly: a wrong URL is a setting
        self._keeper = asyncio.create_task(self._keep_listening(), name="pg-listener")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            self._channel = await conn.fetchval(f"SELECT {CHANNEL_SQL}")
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(lambda _conn: self._lost.set())
        self._conn = conn
        self._lost.clear()
        self.connected.set()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload == self._token:
            return  # our own poke: it woke this process's runner when it was sent
        self._deliver()

    async def _keep_listening(self) -> None:
        wait = RECONNECT_S[0]
        while not self._closing:
            await self._lost.wait()
            if self._closing:
                return
            self.connected.clear()
            log.warning("lost the PostgreSQL LISTEN connection; reconnecting")
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN reconnect failed (%s); again in %.0f s", exc, wait)
                await asyncio.sleep(wait)
                wait = min(RECONNECT_S[1], wait * 2)
                continue
            wait = RECONNECT_S[0]
            self._deliver()  # notifications sent while we were away are lost: look once

    def poke(self) -> None:
        """Wake this process's runner now and NOTIFY the others (listeners read no payload:
        ours carries this process's token, so its own LISTEN does not wake it twice)."""
        self._deliver()
        task = asyncio.get_running_loop().create_task(self._notify(self._token))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _notify(self, payload: str) -> None:
        try:
            await self._backend.write_one(NOTIFY_SQL, payload)
        except Exception as exc:  # a hint only: the runners' periodic look still finds the job
            log.warning("NOTIFY failed: %s", exc)

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keeper
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None


def wakeups_for(url: str, backend: Backend) -> Wakeups:
    """The wake-ups for this database: LISTEN/NOTIFY on PostgreSQL, in-process on SQLite.
    Long-running processes `start()` them (a LISTEN connection); a one-off command only
    sends."""
    if backend.name != "postgres":
        return Wakeups()
    return PostgresWakeups(url, backend)
