-- Runs in flight per tenant, on every worker, for the fair claim (runs_claim): the running
-- runs whose lease has not lapsed, read from the lease index. Each run that finished leaves a
-- dead entry in that index until VACUUM, with its lease still in the future: a herd of 100,000
-- left 77,000 of them, which a bitmap scan (the planner's pick, estimating a few dozen rows)
-- visits in the heap on every claim (8 ms of a 16 ms claim). A plain index scan marks each dead
-- entry once and skips it afterwards (0.2 ms), so bitmap scans are off inside this function.
CREATE FUNCTION extension_runs_in_flight(at timestamptz)
RETURNS TABLE (tenant_id text, n bigint)
LANGUAGE sql STABLE
SET enable_bitmapscan = off
AS $$
    SELECT r.tenant_id, count(*) FROM extension_schedule_run r
    WHERE r.status = 'running' AND r.lease_expires_at > at
    GROUP BY r.tenant_id
$$;

-- Every attempt updates its schedule twice (the overlap lock in runs_prepare, the outcome in
-- runs_complete) and none of those columns is indexed: with free room on each page the new
-- version stays on the same page as a heap-only tuple (no index entries, old versions pruned
-- without VACUUM). Applies to pages written from now on.
ALTER TABLE tenant_extension_schedule SET (fillfactor = 70);
