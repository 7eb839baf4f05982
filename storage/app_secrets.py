"""Secrets the processes sharing one database must agree on, generated once and kept there.

The first process to ask creates the value; every later one (on any host) reads the same
row. Whoever can read the database can read these, which gives nothing new: that reader can
already change jobs and money directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.backend import Backend, Tx


class AppSecrets:
    def __init__(self, backend: Backend, clock: Callable[[], float] = time.time) -> None:
        self._db = backend
        self._clock = clock

    async def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        """The secret called `name`; `make()` creates it when no process has yet."""
        candidate = make()

        async def run(tx: Tx) -> str:
            await tx.execute(
                "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                candidate,
                self._clock(),
            )
            value = await tx.fetchval("SELECT value FROM app_secrets WHERE name = $1", name)
            return str(value)

        return await self._db.write(run)
