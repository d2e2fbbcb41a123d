-- The executor's fair queue: per tenant, oldest first, then by id (see runs_claim). With id in
-- the key, a claim finds each picked run by an exact index lookup, whatever the statistics say.
CREATE INDEX extension_schedule_run_queue2_idx
    ON extension_schedule_run (tenant_id, available_at, id) WHERE status = 'queued';
DROP INDEX extension_schedule_run_queue_idx;
ALTER INDEX extension_schedule_run_queue2_idx RENAME TO extension_schedule_run_queue_idx;
