"""Database fixtures, run against both backends.

- `database_url`: parametrized `sqlite` (a file in tmp_path) / `postgres` (a fresh schema in
  TEST_DATABASE_URL, dropped afterwards, so parallel runs never collide). Without
  TEST_DATABASE_URL the postgres case is skipped - or fails when ANIMATEBOT_REQUIRE_POSTGRES=1.
- `clock`: an injected clock (`clock.advance(s)`, `clock.set(t)`), starting at a fixed time.
- `db`: a migrated `Database` on `database_url` using `clock`.
- `open_db`: a factory for more `Database` objects on the same URL (closed at teardown).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage import Database, LimitDefaults, open_database

PG_ENV = "TEST_DATABASE_URL"
REQUIRE_PG_ENV = "ANIMATEBOT_REQUIRE_POSTGRES"
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """A clock the test moves by hand: no sleeps, no timing flakiness."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def set(self, at: float) -> float:
        self.now = at
        return at


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}search_path={schema}"


def postgres_base_url() -> str | None:
    """TEST_DATABASE_URL, or skip (fail under ANIMATEBOT_REQUIRE_POSTGRES=1) when unset."""
    url = os.environ.get(PG_ENV)
    if url:
        return url
    if os.environ.get(REQUIRE_PG_ENV) == "1":
        pytest.fail(f"{PG_ENV} is not set but {REQUIRE_PG_ENV}=1: PostgreSQL tests must run")
    pytest.skip(f"{PG_ENV} is not set")
    return None


async def create_schema(base_url: str) -> str:
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema


async def drop_schema(base_url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'animatebot.db'}"
        return
    base = postgres_base_url()
    assert base is not None
    schema = await create_schema(base)
    try:
        yield with_search_path(base, schema)
    finally:
        await drop_schema(base, schema)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def open_db(
    database_url: str, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[Database]]]:
    opened: list[Database] = []

    async def factory(**kwargs: Any) -> Database:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("pool_max", 4)
        db = await open_database(database_url, **kwargs)
        opened.append(db)
        return db

    yield factory
    for db in opened:
        await db.close()


@pytest.fixture
def limit_defaults() -> LimitDefaults:
    """No caps; tests that need caps override this fixture or pass their own."""
    return LimitDefaults()


@pytest.fixture
async def db(
    open_db: Callable[..., Awaitable[Database]], limit_defaults: LimitDefaults
) -> Database:
    return await open_db(defaults=limit_defaults)
