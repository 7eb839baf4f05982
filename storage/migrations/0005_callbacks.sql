-- Provider callbacks (webhooks) and the secrets every process sharing this database agrees on.

-- A callback for a job that could not be polled at once (a runner held its lease, or its
-- submit was still in flight) is remembered here, so whoever releases the job makes it due
-- at once instead of at its next scheduled poll; the claim that polls it clears the mark.
-- `callbacks` counts the callbacks a job honoured (a leaked URL costs a bounded number of polls).
ALTER TABLE jobs ADD COLUMN nudged_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN callbacks INTEGER NOT NULL DEFAULT 0;

-- Generated once, shared by every process: the key that signs callback, image and clip URLs
-- when URL_SIGNING_SECRET is not set.
CREATE TABLE app_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
