-- The scheduler's fair path in a herd (handles_claim_due_fair): the tenants with an unpaused
-- handle by a loose index scan, and each tenant's due handles, earliest first.
CREATE INDEX job_handle_tenant_due_idx ON job_handle (tenant_id, next_fire_at) WHERE NOT paused;
