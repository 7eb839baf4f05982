"""How several writers share one SQLite file: a file lock beside it, and BUSY waited out.

Within a process, writes are serialised by the one writer thread (group commit). Across
processes, every write transaction first takes `WriterGate` (a flock), then SQLite's own write
lock (BEGIN IMMEDIATE + busy_timeout, BUSY retried), so a writer queues instead of failing late.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: BEGIN IMMEDIATE + busy_timeout alone
    fcntl = None  # type: ignore[assignment]

from storage.backend.protocol import MAX_ATTEMPTS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
HAS_FLOCK = fcntl is not None


class WriterGate:
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
        # once only: a second os.close could close a file that has since reused the number
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def while_busy(conn: sqlite3.Connection, sql: str) -> None:
    """Run `sql`, waiting out another process that holds the file (SQLITE_BUSY)."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            conn.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == MAX_ATTEMPTS - 1:
                raise
            log.debug("sqlite busy on %s; retry %d", sql, attempt + 1)
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))


def begin_immediate(conn: sqlite3.Connection) -> None:
    while_busy(conn, "BEGIN IMMEDIATE")


def rollback_quietly(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
