-- dialects: sqlite
-- Every reservation writes a hold and two history lines; on SQLite these writes cost more than
-- they need to (about 6 us of the writer's 95 us per reserve + settle, bench/ledger.py at 64
-- callers):
-- - the CHECK constraints on holds and entries run on every write of a row. Only the ledger
--   writes these tables: statuses and kinds are constants in its statements, amounts are
--   checked before they are written (storage/ledger/limits.py), and the tests check the
--   books (Ledger.check_books) after every schedule. The accounts went without CHECKs for
--   the same reason (0007).
-- - AUTOINCREMENT updates sqlite_sequence on every history line. It only matters when the
--   newest row is deleted (its id could then be used again); the history is never deleted, so
--   a plain INTEGER PRIMARY KEY numbers it the same way.
-- SQLite cannot drop a constraint: both tables are built anew and their rows copied over.
CREATE TABLE holds_new (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,  -- 'held', 'settled', 'voided' or 'refused'
    amount_micros BIGINT NOT NULL,
    settled_micros BIGINT NOT NULL DEFAULT 0,
    user_id TEXT NOT NULL,
    server_id TEXT,
    model TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    day_start BIGINT NOT NULL,
    month_start BIGINT NOT NULL,
    stripe INTEGER NOT NULL DEFAULT 0,  -- the global account it counts on (escrow.py)
    refusal TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
INSERT INTO holds_new (key, status, amount_micros, settled_micros, user_id, server_id, model,
    note, day_start, month_start, stripe, refusal, created_at, updated_at)
SELECT key, status, amount_micros, settled_micros, user_id, server_id, model,
    note, day_start, month_start, stripe, refusal, created_at, updated_at FROM holds;
DROP TABLE holds;
ALTER TABLE holds_new RENAME TO holds;
CREATE INDEX holds_created ON holds (created_at);

CREATE TABLE entries_new (
    id INTEGER PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,  -- 'reserve', 'refuse', 'settle' or 'void'
    amount_micros BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    server_id TEXT,
    model TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
INSERT INTO entries_new (id, at, key, kind, amount_micros, user_id, server_id, model, note)
SELECT id, at, key, kind, amount_micros, user_id, server_id, model, note FROM entries;
DROP TABLE entries;
ALTER TABLE entries_new RENAME TO entries;
DELETE FROM sqlite_sequence WHERE name = 'entries';
