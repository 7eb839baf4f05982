-- dialects: postgres
-- The CHECK constraints on holds and entries, as 0009 on SQLite: PostgreSQL prepares them
-- anew for every statement that writes a row (about 4 us each inside the ledger's functions).
-- Only the ledger writes these tables: statuses and kinds are constants in its statements,
-- amounts are checked before they are written, and the tests check the books
-- (Ledger.check_books) after every schedule. The accounts went without CHECKs in 0007.
ALTER TABLE holds
    DROP CONSTRAINT IF EXISTS holds_status_check,
    DROP CONSTRAINT IF EXISTS holds_amount_micros_check,
    DROP CONSTRAINT IF EXISTS holds_settled_micros_check;
ALTER TABLE entries DROP CONSTRAINT IF EXISTS entries_kind_check;
