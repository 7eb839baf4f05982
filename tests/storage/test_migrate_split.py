"""Migration files are cut where the SQL says, never on a `;` inside a string, a quoted name,
a comment or a function or trigger body."""

from __future__ import annotations

import pytest

from storage import open_database
from storage.backend import Tx
from storage.migrate import Migration, split_sqlite

COMMON = """-- dialects: sqlite postgres
-- a comment; with a semicolon, and 'an unbalanced quote
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, "odd;name" TEXT);
/* a block comment; still
   one comment */
INSERT INTO notes (id, body) VALUES (1, 'a;b'), (2, 'it''s; fine');
INSERT INTO notes (id, body, "odd;name") VALUES (3, '-- not a comment', 'x');
-- trailing words; nothing to run
"""

SQLITE_ONLY = """CREATE TABLE counts (n INTEGER NOT NULL);
INSERT INTO counts (n) VALUES (0);
CREATE TRIGGER notes_count AFTER INSERT ON notes BEGIN
    UPDATE counts SET n = n + 1;
    SELECT ';';
END;
INSERT INTO notes (id, body) VALUES (4, 'x');
"""

POSTGRES_ONLY = """CREATE FUNCTION semis() RETURNS TEXT AS $$
BEGIN
    RETURN 'x;y'; -- a ';' in a body
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION tagged() RETURNS TEXT AS $body$ SELECT 'a;' || $q$;b$q$ $body$ LANGUAGE sql;
INSERT INTO notes (id, body) VALUES (4, semis() || tagged());
"""


def test_sqlite_split_follows_strings_comments_and_trigger_bodies() -> None:
    statements = split_sqlite(COMMON + SQLITE_ONLY)
    assert len(statements) == 7
    assert statements[0].endswith('"odd;name" TEXT);')
    assert statements[1].startswith("/* a block comment") and "'it''s; fine'" in statements[1]
    assert statements[5].startswith("CREATE TRIGGER") and statements[5].endswith("END;")


def test_a_statement_without_its_semicolon_is_refused() -> None:
    with pytest.raises(ValueError, match="migration 0009_x ends with a statement"):
        Migration(9, "x", "CREATE TABLE a (b TEXT);\nCREATE TABLE c (d TEXT)").statements("sqlite")


async def test_a_migration_runs_as_written_on_both_backends(database_url: str) -> None:
    db = await open_database(database_url, migrate=False)
    try:
        dialect = db.backend
        extra = SQLITE_ONLY if dialect == "sqlite" else POSTGRES_ONLY
        statements = Migration(99, "split", COMMON + extra).statements(dialect)

        async def apply(tx: Tx) -> None:
            for statement in statements:
                await tx.execute(statement)

        await db.raw.script(apply)
        rows = await db.raw.read(lambda tx: tx.fetch("SELECT id, body FROM notes ORDER BY id"))
        bodies = [r["body"] for r in rows]
        assert bodies[:3] == ["a;b", "it's; fine", "-- not a comment"]
        if dialect == "sqlite":
            count = await db.raw.read(lambda tx: tx.fetchval("SELECT n FROM counts"))
            assert bodies[3] == "x" and count == 1
        else:
            assert bodies[3] == "x;ya;;b"
    finally:
        await db.close()
