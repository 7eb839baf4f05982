"""Opening the database: pick the backend from the URL, migrate, wire the stores."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from storage.app_secrets import AppSecrets
from storage.backend import Backend, Dialect, open_backend
from storage.jobs import JobStore
from storage.keys import KeyStore
from storage.ledger import Ledger
from storage.migrate import migrate as run_migrations
from storage.models import LimitDefaults
from storage.retention import Purged, purge_refused_holds
from storage.servers import ServerStore


class Database:
    """The ledger, the job store, the chat servers' settings and refused provider keys over
    one backend. Close it (or use `async with`)."""

    def __init__(
        self, backend: Backend, defaults: LimitDefaults, clock: Callable[[], float]
    ) -> None:
        self._backend = backend
        self.backend: Dialect = backend.name
        self.ledger = Ledger(backend, defaults, clock)
        self.jobs = JobStore(backend, self.ledger, clock)
        self.servers = ServerStore(backend, clock)
        self.secrets = AppSecrets(backend, clock)
        self.keys = KeyStore(backend, clock)

    @property
    def raw(self) -> Backend:
        """The backend itself, for migrations and diagnostics."""
        return self._backend

    async def purge(self, *, refusals_before: float, inputs_before: float) -> Purged:
        """Delete what retention lets go (see `storage.retention`); the ledger stays whole."""
        return Purged(
            refused_holds=await purge_refused_holds(self._backend, older_than=refusals_before),
            input_images=await self.jobs.purge_inputs(older_than=inputs_before),
        )

    async def migrate(self) -> list[int]:
        return await run_migrations(self._backend)

    async def close(self) -> None:
        await self._backend.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_database(
    url: str,
    *,
    defaults: LimitDefaults | None = None,
    clock: Callable[[], float] = time.time,
    migrate: bool = True,
    pool_max: int = 10,
) -> Database:
    """Open `sqlite:///file.db`, `sqlite:////abs/file.db`, `sqlite:///:memory:` (tests only)
    or `postgresql://...` (query parameters such as `?search_path=s` become server settings).
    """
    backend = await open_backend(url, pool_max=pool_max)
    try:
        if migrate:
            await run_migrations(backend)
    except BaseException:
        await backend.close()
        raise
    return Database(backend, defaults or LimitDefaults(), clock)
