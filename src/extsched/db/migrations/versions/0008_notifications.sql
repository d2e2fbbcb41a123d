-- Notifications (SPEC §5, §9). Both tables are tenant tables: distributed by tenant_id, which
-- leads every key; no foreign keys (a tenant's rows go with business logic, like runs).

-- One row per tenant that configured notifications. The lease and window columns pace its
-- deliveries: at most one in flight (lease_owner/lease_until) and at most
-- EXTSCHED_NOTIFY_PER_MINUTE attempts per minute (window_start/window_count).
CREATE TABLE tenant_notification (
    tenant_id         text NOT NULL,
    webhook_url       text,
    events            text[] NOT NULL DEFAULT '{}',
    enabled           boolean NOT NULL DEFAULT false,
    -- The tenant's whsec_ signing secret, sealed like install secrets (crypto.SecretBox).
    secret_encrypted  bytea,
    secret_hint       text,
    lease_owner       text,
    lease_until       timestamptz,
    window_start      timestamptz,
    window_count      integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_notification_pkey PRIMARY KEY (tenant_id)
);

-- The outbox and the deliveries log in one: a row is queued in the transaction that causes
-- its event, delivered (or failed after 24 h of retries) by a worker, and pruned by retention.
CREATE TABLE notification_delivery (
    tenant_id        text NOT NULL,
    id               uuid NOT NULL,
    type             text NOT NULL,
    at               timestamptz NOT NULL,
    payload          jsonb NOT NULL,
    -- run_failed events of one schedule fold into the row still waiting for its first attempt.
    coalesce_key     text,
    count            integer NOT NULL DEFAULT 1,
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      text,
    last_attempt_at  timestamptz,
    last_error       text,
    http_status      integer,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL,
    CONSTRAINT notification_delivery_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT notification_delivery_status_check
        CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT notification_delivery_type_check CHECK (type IN
        ('run_failed', 'schedule_disabled', 'schedule_recovered', 'schedule_overdue', 'test'))
);
-- Due deliveries, for the workers' claim.
CREATE INDEX notification_delivery_due_idx
    ON notification_delivery (next_attempt_at) WHERE status = 'pending';
-- At most one row open for folding per (tenant, key): pending, never attempted, not claimed.
CREATE UNIQUE INDEX notification_delivery_fold_key
    ON notification_delivery (tenant_id, coalesce_key)
    WHERE status = 'pending' AND attempts = 0 AND lease_owner IS NULL AND coalesce_key IS NOT NULL;

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('tenant_notification', 'tenant_id', colocate_with => 'tenant');
        PERFORM create_distributed_table('notification_delivery', 'tenant_id', colocate_with => 'tenant');
    END IF;
END
$citus$;
