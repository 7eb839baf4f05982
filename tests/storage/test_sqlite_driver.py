"""The SQLite backend runs each transaction body whole on its database thread: a body that
really suspends is refused, and only its own statements are undone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from storage.backend import SqliteBackend, SuspendingBody, Tx, run_sync


async def _count(tx: Tx) -> int:
    return int(await tx.fetchval("SELECT COUNT(*) FROM t"))


@pytest.fixture
async def backend(tmp_path: Path) -> Any:
    be = await SqliteBackend.open(str(tmp_path / "driver.db"))

    async def create(tx: Tx) -> None:
        await tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")

    await be.script(create)
    yield be
    await be.close()


def test_run_sync_finishes_a_body_that_never_suspends() -> None:
    async def body() -> int:
        async def inner() -> int:
            return 41

        return await inner() + 1

    assert run_sync(body()) == 42


def test_run_sync_refuses_a_body_that_suspends() -> None:
    async def body() -> None:
        await asyncio.sleep(0)  # a bare yield to the event loop

    with pytest.raises(SuspendingBody, match="suspended"):
        run_sync(body())


async def test_a_suspending_write_is_undone_and_its_neighbours_commit(backend: Any) -> None:
    async def good(tx: Tx, key: str) -> str:
        await tx.execute("INSERT INTO t (k) VALUES ($1)", key)
        return key

    async def bad(tx: Tx) -> None:
        await tx.execute("INSERT INTO t (k) VALUES ('bad')")
        await asyncio.sleep(0)

    # gathered: the three writes share one batch (one BEGIN ... COMMIT, one savepoint each)
    results = await asyncio.gather(
        backend.write(lambda tx: good(tx, "a")),
        backend.write(bad),
        backend.write(lambda tx: good(tx, "b")),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], SuspendingBody)
    rows = await backend.read(lambda tx: tx.fetch("SELECT k FROM t ORDER BY k"))
    assert [r["k"] for r in rows] == ["a", "b"]
    # alone in its batch (no savepoint), the same body is refused and leaves nothing either
    with pytest.raises(SuspendingBody):
        await backend.write(bad)
    assert await backend.read(_count) == 2


async def test_reads_and_scripts_refuse_suspending_bodies(backend: Any) -> None:
    async def slow_read(tx: Tx) -> int:
        n = await _count(tx)
        await asyncio.sleep(0)
        return n

    with pytest.raises(SuspendingBody):
        await backend.read(slow_read)
    with pytest.raises(SuspendingBody):
        await backend.script(slow_read)
    assert await backend.read(_count) == 0  # and the connections still work


async def test_closing_twice_leaves_other_files_alone(tmp_path: Path) -> None:
    """A second close must not close the writer lock's file number again: by then it may
    belong to another file of the process."""
    be = await SqliteBackend.open(str(tmp_path / "twice.db"))
    await be.close()
    with open(tmp_path / "other.txt", "w") as other:  # likely takes the freed number
        await be.close()
        other.write("still open")
    assert (tmp_path / "other.txt").read_text() == "still open"
