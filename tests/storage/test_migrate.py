"""Migrations: applied once, idempotent, safe when several processes start together."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from storage import open_database
from storage.migrate import applied_versions, load_migrations, migrate

ROOT = Path(__file__).resolve().parents[2]


async def test_migrations_are_numbered_and_idempotent(database_url: str) -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    db = await open_database(database_url)
    try:
        assert await applied_versions(db.raw) == versions
        assert await migrate(db.raw) == []  # second run: nothing to do
        assert await db.migrate() == []
    finally:
        await db.close()
    again = await open_database(database_url)
    await again.close()


async def test_open_without_migrate_then_migrate(database_url: str) -> None:
    db = await open_database(database_url, migrate=False)
    try:
        assert await db.migrate() == [m.version for m in load_migrations()]
        assert await db.migrate() == []
    finally:
        await db.close()


async def test_concurrent_startup_migrates_once(database_url: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from storage import open_database\n"
        "async def main():\n"
        "    db = await open_database(sys.argv[1])\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, database_url, cwd=ROOT)
        for _ in range(4)
    ]
    codes = [await p.wait() for p in procs]
    assert codes == [0, 0, 0, 0]
    db = await open_database(database_url, migrate=False)
    try:
        rows = await db.raw.read(lambda tx: tx.fetch("SELECT version FROM schema_migrations"))
        assert len(rows) == len(load_migrations())
    finally:
        await db.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://x", "sqlite://relative.db", "nonsense"],
)
async def test_bad_urls_say_what_is_allowed(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        await open_database(url)


def test_cli_migrate_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "bot", "migrate", "--json"],
        cwd=ROOT, env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert '"applied":[1' in out.stdout
