"""What the stores see of a database: a transaction (`Tx`) and a backend that runs bodies in one.

SQL is written once, in PostgreSQL style (`$1` placeholders); the SQLite backend rewrites the
placeholders. A body is an `async def` over a `Tx`, so the same code drives asyncpg and SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar, cast

T = TypeVar("T")
Row = Mapping[str, Any]
Dialect = Literal["sqlite", "postgres"]

# Every write retries a busy database or a serialization failure at most this often.
MAX_ATTEMPTS = 20


class StorageAbort(Exception):
    """A shared write transaction was interrupted; this caller's write did not happen."""


class Tx(Protocol):
    """One open transaction (or, for reads, one connection in autocommit)."""

    # for the few statements written per dialect (the ledger's hottest: storage/ledger/rules.py)
    dialect: Dialect

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def count(self, sql: str, *args: Any) -> int:
        """Run a write; how many rows it inserted or updated (no RETURNING to build)."""
        ...


class Backend(Protocol):
    name: Dialect
    # PostgreSQL needs explicit row locks (`FOR UPDATE`); SQLite's BEGIN IMMEDIATE already
    # makes every write transaction exclusive.
    row_locks: bool
    for_update: str
    skip_locked: str

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def write_one(self, sql: str, *args: Any) -> list[Row]: ...
    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def script(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def close(self) -> None: ...


def first_value(row: Row) -> Any:
    """A row's first column: both drivers' rows are also sequences."""
    return cast(Sequence[Any], row)[0]


def placeholders(start: int, count: int) -> str:
    """'$start, $start+1, ...' for an IN list of `count` values."""
    return ", ".join(f"${i}" for i in range(start, start + count))


def in_list(values: Sequence[str]) -> str:
    """A literal IN list for trusted constants (enum values), quoted."""
    for v in values:
        if not re.fullmatch(r"[a-z_]+", v):
            raise ValueError(f"not a safe SQL constant: {v!r}")
    return ", ".join(f"'{v}'" for v in values)
