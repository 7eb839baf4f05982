-- Provider API keys a provider refused (HTTP 401/403), so that every process stops submitting
-- to that provider until the key changes. `key_id` is a short one-way fingerprint of the key
-- (never the key itself): a process started with another key has another id and is not
-- affected; `python -m bot doctor` deletes the row when the key works again.
CREATE TABLE provider_keys (
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    status_code INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    refused_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (provider, key_id)
);
