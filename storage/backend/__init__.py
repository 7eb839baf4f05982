"""The two database backends behind one small interface (`Backend`, `Tx`).

- `protocol.py`: what the stores see: `Tx`, `Backend`, SQL helpers.
- `sqlite.py`: SQLite, one writer thread and one reader thread per process;
  `group_commit.py` (many callers, one COMMIT), `driver.py` (a whole transaction body per
  thread hop), `locking.py` (several processes on one file).
- `postgres.py`: PostgreSQL through an asyncpg pool.

Every write runs through `Backend.write(fn)`, which owns the transaction and its retries, so
callers compose several steps (ledger + job) into ONE transaction by passing the same `Tx`.
"""

from __future__ import annotations

from storage.backend.driver import SuspendingBody, run_sync
from storage.backend.postgres import PgTx, PostgresBackend
from storage.backend.protocol import (
    MAX_ATTEMPTS,
    Backend,
    Dialect,
    Row,
    StorageAbort,
    Tx,
    first_value,
    in_list,
    placeholders,
)
from storage.backend.sqlite import SqliteBackend, SqliteTx, to_sqlite

__all__ = [
    "MAX_ATTEMPTS",
    "Backend",
    "Dialect",
    "PgTx",
    "PostgresBackend",
    "Row",
    "SqliteBackend",
    "SqliteTx",
    "StorageAbort",
    "SuspendingBody",
    "Tx",
    "first_value",
    "in_list",
    "open_backend",
    "placeholders",
    "run_sync",
    "sqlite_path",
    "to_sqlite",
]


def sqlite_path(url: str) -> str:
    """`sqlite:///rel.db` -> 'rel.db'; `sqlite:////abs.db` -> '/abs.db'; `sqlite:///:memory:`."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"bad SQLite URL {url!r}: use sqlite:///relative.db, sqlite:////abs/path.db "
            "or sqlite:///:memory:"
        )
    return rest[1:].split("?", 1)[0]


async def open_backend(url: str, *, pool_max: int = 10) -> Backend:
    if url.startswith("sqlite://"):
        return await SqliteBackend.open(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresBackend.open(url, max_size=pool_max)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///file.db or postgresql://..."
    )
