"""Versioned schema migrations: numbered files in storage/migrations/, applied once each.

Why not yoyo or alembic: both need a second, synchronous PostgreSQL driver (psycopg) or
SQLAlchemy next to asyncpg, and a second way to reach SQLite; the whole job here is a loop
over a handful of SQL files inside one transaction, so we keep one driver per backend.

The few dialect differences are tokens in the SQL files (`{{id_pk}}`, `{{blob}}`). Several processes
starting at once migrate exactly once: PostgreSQL takes a transaction-scoped advisory lock,
SQLite runs the whole migration under BEGIN IMMEDIATE (one writer per file).

A file is never split on a bare `;`, which breaks on one inside a string, a comment or a
function body. PostgreSQL runs each file as ONE script (asyncpg sends a statement without
parameters as a simple query, which may hold many statements). sqlite3 runs one statement
per call, and `executescript` would commit the surrounding transaction, so SQLite's own
tokenizer decides where each statement ends (`sqlite3.complete_statement`: strings, quoted
names, comments, trigger bodies).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources

from storage.backend import Backend, Tx

_TOKENS: dict[str, dict[str, str]] = {
    "sqlite": {"id_pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgres": {"id_pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "blob": "BYTEA"},
}
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_ADVISORY_KEY = 0x616E696D  # "anim"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, dialect: str) -> list[str]:
        """The file's statements for `dialect`; none when its first line is
        `-- dialects: ...` without it (it is still recorded as applied, so versions agree).
        """
        first = self.sql.lstrip().split("\n", 1)[0]
        if first.startswith("-- dialects:") and dialect not in first.split(":", 1)[1].split():
            return []
        text = self.sql
        for token, value in _TOKENS[dialect].items():
            text = text.replace("{{" + token + "}}", value)
        if dialect == "postgres":
            return [text] if not only_comments(text) else []
        return split_sqlite(text, where=f"migration {self.version:04d}_{self.name}")


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def only_comments(text: str) -> bool:
    """True when `text` holds nothing but whitespace and comments (no string to mislead it:
    the caller only asks about what is left after the last statement)."""
    return not _COMMENTS.sub("", text).strip()


def split_sqlite(text: str, *, where: str = "SQL") -> list[str]:
    """SQLite statements of `text`, each ending where SQLite's tokenizer says it ends."""
    out: list[str] = []
    start = 0
    for end, char in enumerate(text):
        if char == ";" and sqlite3.complete_statement(text[start : end + 1]):
            out.append(text[start : end + 1].strip())
            start = end + 1
    if not only_comments(text[start:]):
        raise ValueError(f"{where} ends with a statement that has no closing ';'")
    return out


def load_migrations() -> list[Migration]:
    found = []
    for entry in (resources.files("storage") / "migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(backend: Backend) -> list[int]:
    """Apply what is missing; return the versions applied now (empty when up to date)."""
    migrations = load_migrations()

    async def run(tx: Tx) -> list[int]:
        if backend.name == "postgres":
            await tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _ADVISORY_KEY
            )
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = {int(r["version"]) for r in await tx.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for mig in migrations:
            if mig.version in done:
                continue
            for stmt in mig.statements(backend.name):
                await tx.execute(stmt)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                mig.version,
                mig.name,
                time.time(),
            )
            applied.append(mig.version)
        return applied

    return await backend.script(run)


async def applied_versions(backend: Backend) -> list[int]:
    async def run(tx: Tx) -> list[int]:
        rows = await tx.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [int(r["version"]) for r in rows]

    return await backend.read(run)
