-- The runner's two hot queries (claim due jobs; when is the next one due) read only active
-- jobs in next_check_at order. While a job is leased its next_check_at is the lease's end,
-- so one ordered index answers both without looking at leases.
CREATE INDEX jobs_active_due ON jobs (next_check_at)
    WHERE status IN ('reserved', 'submitted', 'processing', 'completed');
