"""PostgreSQL wake-ups: a process's own poke wakes its runner once; another's wakes it too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from storage import Database
from storage.notify import wakeups_for


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_own_poke_wakes_once_and_another_process_still_wakes(
    database_url: str, open_db: Callable[..., Awaitable[Database]]
) -> None:
    mine_db, other_db = await open_db(), await open_db()
    mine, other = wakeups_for(database_url, mine_db.raw), wakeups_for(database_url, other_db.raw)
    woken: list[str] = []
    heard = asyncio.Event()
    mine.subscribe(lambda: woken.append("mine"))
    other.subscribe(heard.set)
    await mine.start()
    await other.start()
    try:
        mine.poke()
        assert woken == ["mine"]  # at once, in this process
        await asyncio.wait_for(heard.wait(), 30)  # the other process heard the NOTIFY...
        # ...and a round trip later, this process's LISTEN has not woken it a second time
        await mine_db.raw.read(lambda tx: tx.fetchval("SELECT 1"))
        assert woken == ["mine"]
        heard.clear()
        other.poke()
        for _ in range(300):
            if woken == ["mine", "mine"]:
                break
            await asyncio.sleep(0.1)
        assert woken == ["mine", "mine"]  # another process's poke wakes this one
    finally:
        await mine.close()
        await other.close()
