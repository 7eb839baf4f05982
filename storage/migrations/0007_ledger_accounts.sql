-- The ledger keeps its counters in one row per scope - an account - instead of counting holds:
-- a reservation updates its user's, its server's and one global stripe's account in the same
-- transaction as its hold, each with one conditional write (storage/ledger/rules.py).
-- Replaces budgets (one row per scope and period), scope_locks, limit_overrides and the holds
-- indexes that only the counts used (holds keep their key, and their time for the reports);
-- the data is carried over.

-- No CHECK constraints on these two tables: PostgreSQL builds them anew for every statement
-- that writes a row (about 15 us each time, on every reservation). Only the ledger writes
-- them: kinds, stripes and caps are checked before they are written, counts only grow by
-- conditional writes, and the statements that give back (statements.py) refuse to take any
-- counter below zero - they fail loudly instead.
CREATE TABLE accounts (
    scope_kind TEXT NOT NULL,  -- 'user', 'server' or 'global'
    scope_id TEXT NOT NULL,
    -- the global scope is 16 accounts (stripe = crc32(hold key) % 16) so that reservations do
    -- not all queue on one row; user and server accounts have stripe 0. NEVER change the count.
    stripe INTEGER NOT NULL DEFAULT 0,
    -- caps set for this scope (`limits set`): NULL = the default from settings, -1 = no cap
    daily_cap BIGINT,
    monthly_cap BIGINT,
    concurrent_cap BIGINT,
    hourly_cap BIGINT,
    -- money reserved (held + settled) in the UTC day / month that starts at day_start /
    -- month_start, and of it what is still held; a reservation in a later period starts afresh
    day_start BIGINT NOT NULL DEFAULT 0,
    day_micros BIGINT NOT NULL DEFAULT 0,
    day_held BIGINT NOT NULL DEFAULT 0,
    month_start BIGINT NOT NULL DEFAULT 0,
    month_micros BIGINT NOT NULL DEFAULT 0,
    month_held BIGINT NOT NULL DEFAULT 0,
    -- holds still held (clips rendering) and the money they hold, whatever their period
    running BIGINT NOT NULL DEFAULT 0,
    held_micros BIGINT NOT NULL DEFAULT 0,
    -- a global stripe under a bot-wide cap: its share of the cap, and the cap it was cut from
    -- (the shares of the 16 stripes add up to the cap; NULL = not cut yet)
    day_share BIGINT,
    day_share_of BIGINT,
    month_share BIGINT,
    month_share_of BIGINT,
    running_share BIGINT,
    running_share_of BIGINT,
    PRIMARY KEY (scope_kind, scope_id, stripe)
);

-- Clips started (held or settled; a void takes its start back) per person, server ('' = none)
-- and whole second, rounded up. The hourly caps count the rows with at_second > now - 3600:
-- a person's by the key, a server's by starts_server, the bot's by reading them all (only when
-- a bot-wide hourly cap is set). One row per reservation at most; older rows are purged.
CREATE TABLE starts (
    user_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    at_second BIGINT NOT NULL,
    started BIGINT NOT NULL,
    PRIMARY KEY (user_id, at_second, server_id)
);
CREATE INDEX starts_server ON starts (server_id, at_second) WHERE server_id <> '';

-- Carry over: each scope's latest day and month counter, ...
INSERT INTO accounts (scope_kind, scope_id, stripe, day_start, month_start)
SELECT scope_kind, scope_id, stripe,
       MAX(CASE WHEN period_kind = 'day' THEN period_start ELSE 0 END),
       MAX(CASE WHEN period_kind = 'month' THEN period_start ELSE 0 END)
FROM budgets GROUP BY scope_kind, scope_id, stripe;

UPDATE accounts SET
    day_micros = COALESCE((SELECT b.used_micros FROM budgets b
        WHERE b.scope_kind = accounts.scope_kind AND b.scope_id = accounts.scope_id
          AND b.stripe = accounts.stripe AND b.period_kind = 'day'
          AND b.period_start = accounts.day_start), 0),
    month_micros = COALESCE((SELECT b.used_micros FROM budgets b
        WHERE b.scope_kind = accounts.scope_kind AND b.scope_id = accounts.scope_id
          AND b.stripe = accounts.stripe AND b.period_kind = 'month'
          AND b.period_start = accounts.month_start), 0);

-- ... what of it is still held, and the holds still held ...
UPDATE accounts SET
    day_held = COALESCE((SELECT SUM(h.amount_micros) FROM holds h
        WHERE h.status = 'held' AND h.day_start = accounts.day_start
          AND CASE accounts.scope_kind WHEN 'user' THEN h.user_id = accounts.scope_id
                   WHEN 'server' THEN h.server_id = accounts.scope_id
                   ELSE h.stripe = accounts.stripe END), 0),
    month_held = COALESCE((SELECT SUM(h.amount_micros) FROM holds h
        WHERE h.status = 'held' AND h.month_start = accounts.month_start
          AND CASE accounts.scope_kind WHEN 'user' THEN h.user_id = accounts.scope_id
                   WHEN 'server' THEN h.server_id = accounts.scope_id
                   ELSE h.stripe = accounts.stripe END), 0),
    running = (SELECT COUNT(*) FROM holds h
        WHERE h.status = 'held'
          AND CASE accounts.scope_kind WHEN 'user' THEN h.user_id = accounts.scope_id
                   WHEN 'server' THEN h.server_id = accounts.scope_id
                   ELSE h.stripe = accounts.stripe END),
    held_micros = COALESCE((SELECT SUM(h.amount_micros) FROM holds h
        WHERE h.status = 'held'
          AND CASE accounts.scope_kind WHEN 'user' THEN h.user_id = accounts.scope_id
                   WHEN 'server' THEN h.server_id = accounts.scope_id
                   ELSE h.stripe = accounts.stripe END), 0);

-- ... the caps set per scope (on every global stripe) ...
INSERT INTO accounts (scope_kind, scope_id, stripe)
SELECT DISTINCT o.scope_kind, o.scope_id, s.n
FROM limit_overrides o,
     (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
      UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8
      UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12
      UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15) AS s
WHERE s.n = 0 OR o.scope_kind = 'global'
ON CONFLICT (scope_kind, scope_id, stripe) DO NOTHING;

UPDATE accounts SET
    daily_cap = (SELECT COALESCE(o.value, -1) FROM limit_overrides o WHERE o.cap = 'daily'
        AND o.scope_kind = accounts.scope_kind AND o.scope_id = accounts.scope_id),
    monthly_cap = (SELECT COALESCE(o.value, -1) FROM limit_overrides o WHERE o.cap = 'monthly'
        AND o.scope_kind = accounts.scope_kind AND o.scope_id = accounts.scope_id),
    concurrent_cap = (SELECT COALESCE(o.value, -1) FROM limit_overrides o
        WHERE o.cap = 'concurrent_jobs'
        AND o.scope_kind = accounts.scope_kind AND o.scope_id = accounts.scope_id),
    hourly_cap = (SELECT COALESCE(o.value, -1) FROM limit_overrides o
        WHERE o.cap = 'jobs_per_hour'
        AND o.scope_kind = accounts.scope_kind AND o.scope_id = accounts.scope_id);

-- ... and the clips started in the hour before the newest hold (the second rounded up, written
-- so that PostgreSQL's rounding CAST and SQLite's truncating one agree).
INSERT INTO starts (user_id, server_id, at_second, started)
SELECT r.user_id, r.server_id, r.sec, COUNT(*) FROM (
    SELECT user_id, COALESCE(server_id, '') AS server_id, CAST(created_at AS BIGINT)
        + CASE WHEN CAST(created_at AS BIGINT) < created_at THEN 1 ELSE 0 END AS sec
    FROM holds WHERE status IN ('held', 'settled')
      AND created_at > (SELECT MAX(created_at) FROM holds) - 3700) AS r
GROUP BY r.user_id, r.server_id, r.sec;

-- The caps no longer count holds; what stays is holds_created, for reports and /metrics. The
-- history is read in order (`ledger export`), never by time on a hot path: no index on it.
DROP INDEX entries_at;
DROP INDEX holds_user_created;
DROP INDEX holds_server_created;
DROP INDEX holds_user_held;
DROP INDEX holds_server_held;
DROP INDEX holds_held;
DROP TABLE budgets;
DROP TABLE scope_locks;
DROP TABLE limit_overrides;
