-- The ledger and the job store. Money: BIGINT micro-dollars. Time: unix seconds (DOUBLE).
-- Tokens: {{id_pk}} is the dialect's auto-increment primary key.

-- One row per reservation key: the hold, its outcome, and (status 'refused') a recorded refusal.
CREATE TABLE holds (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('held', 'settled', 'voided', 'refused')),
    amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
    settled_micros BIGINT NOT NULL DEFAULT 0 CHECK (settled_micros >= 0),
    user_id TEXT NOT NULL,
    server_id TEXT,
    model TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    day_start BIGINT NOT NULL,
    month_start BIGINT NOT NULL,
    -- which global budget stripe the hold counts in (see budgets)
    stripe INTEGER NOT NULL DEFAULT 0,
    refusal TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX holds_user_created ON holds (user_id, created_at);
CREATE INDEX holds_server_created ON holds (server_id, created_at);
CREATE INDEX holds_created ON holds (created_at);
CREATE INDEX holds_user_held ON holds (user_id) WHERE status = 'held';
CREATE INDEX holds_server_held ON holds (server_id) WHERE status = 'held';
CREATE INDEX holds_held ON holds (created_at) WHERE status = 'held';

-- The counters the caps are checked against: used = settled + held for one scope and period.
-- User and server scopes have one row per period (stripe 0). The global scope is split into
-- 16 stripes per period (stripe = crc32(hold key) % 16, storage.ledger.GLOBAL_STRIPES): its
-- used amount is the SUM of the stripes, so reservations without a global money cap do not all
-- queue on one row. The stripe count must NEVER change: holds record their stripe, and a
-- global cap check locks exactly stripes 0..15.
CREATE TABLE budgets (
    scope_kind TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    period_kind TEXT NOT NULL CHECK (period_kind IN ('day', 'month')),
    period_start BIGINT NOT NULL,
    stripe INTEGER NOT NULL DEFAULT 0 CHECK (stripe >= 0 AND stripe < 16),
    used_micros BIGINT NOT NULL DEFAULT 0 CHECK (used_micros >= 0),
    PRIMARY KEY (scope_kind, scope_id, period_kind, period_start, stripe)
);

-- One row per scope, locked by every reservation of a scope that has a job-count cap
-- (concurrent or per hour; PostgreSQL), so the counts are taken while no other such
-- reservation of the scope runs. Money caps need no lock: their UPDATE is conditional.
CREATE TABLE scope_locks (
    scope_kind TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope_kind, scope_id)
);

-- Cap overrides. A row means "override": value NULL = explicitly no cap.
CREATE TABLE limit_overrides (
    scope_kind TEXT NOT NULL CHECK (scope_kind IN ('user', 'server', 'global')),
    scope_id TEXT NOT NULL,
    cap TEXT NOT NULL,
    value BIGINT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope_kind, scope_id, cap)
);

-- Append-only history of every ledger step (never updated, never deleted).
CREATE TABLE entries (
    id {{id_pk}},
    at DOUBLE PRECISION NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('reserve', 'refuse', 'settle', 'void')),
    amount_micros BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    server_id TEXT,
    model TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX entries_at ON entries (at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    server_id TEXT,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    params TEXT NOT NULL,
    prompt TEXT NOT NULL,
    image_ref TEXT NOT NULL,
    cost_micros BIGINT NOT NULL,
    channel_id TEXT,
    thread_id TEXT,
    message_id TEXT,
    sink TEXT NOT NULL,
    meta TEXT NOT NULL,
    next_check_at DOUBLE PRECISION,
    deadline_at DOUBLE PRECISION,
    status TEXT NOT NULL,
    ledger_key TEXT NOT NULL,
    provider_task_id TEXT,
    submit_started_at DOUBLE PRECISION,
    status_reason TEXT NOT NULL DEFAULT '',
    error_code BIGINT,
    progress_percent INTEGER,
    output_url TEXT,
    delivered_ref TEXT,
    cancel_requested SMALLINT NOT NULL DEFAULT 0,
    poll_count INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (platform, event_id)
);
CREATE INDEX jobs_due ON jobs (status, next_check_at);
CREATE INDEX jobs_task ON jobs (provider, provider_task_id);
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_ledger_key ON jobs (ledger_key);

CREATE TABLE job_events (
    id {{id_pk}},
    job_id TEXT NOT NULL REFERENCES jobs (id),
    at DOUBLE PRECISION NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_events_job ON job_events (job_id, id);
