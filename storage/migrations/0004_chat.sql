-- What the chat front doors keep, and the prepared input images of jobs.

-- The validated, re-encoded input image of a job (slot 'image', and 'last_image' for models
-- that take one), stored with the job so that any process can submit it after a crash, serve
-- it at a signed URL (Novita), and re-roll or retry it. Purged after CLIP_RETENTION_DAYS.
CREATE TABLE job_inputs (
    job_id TEXT NOT NULL,
    slot TEXT NOT NULL CHECK (slot IN ('image', 'last_image')),
    data {{blob}} NOT NULL,
    content_type TEXT NOT NULL,
    filename TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, slot)
);
CREATE INDEX job_inputs_created ON job_inputs (created_at);

-- Per chat server (Discord guild, Slack workspace; ids qualified as 'discord:123'):
-- whether /animate is paused there, by whom and when.
CREATE TABLE chat_servers (
    server_id TEXT PRIMARY KEY,
    paused SMALLINT NOT NULL DEFAULT 0,
    paused_by TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);

-- A server's saved LoRAs: a short name for a LoRA URL and its default strength, usable by
-- name wherever a model takes LoRA URLs.
CREATE TABLE saved_loras (
    server_id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    scale DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (server_id, name)
);

-- Caps for the members of a role (Discord). A member without caps of their own gets, for each
-- cap, the most generous value among their roles that set it (NULL value = no cap).
CREATE TABLE role_limits (
    server_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    cap TEXT NOT NULL,
    value BIGINT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (server_id, role_id, cap)
);
