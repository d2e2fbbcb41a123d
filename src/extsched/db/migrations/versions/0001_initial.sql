-- extsched initial schema.
--
-- Citus rules (SPEC §10): registry tables and api_token are reference tables; every tenant
-- table is distributed by tenant_id, which leads every primary key and unique constraint.
-- There is no ON DELETE CASCADE and no foreign key between distributed tables: every cleanup
-- is business logic, done in order by the services.

-- ---------------------------------------------------------------- registry (reference tables)
CREATE TABLE extension (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    publisher   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT extension_name_key UNIQUE (name)
);

CREATE TABLE extension_version (
    id            uuid PRIMARY KEY,
    extension_id  uuid NOT NULL REFERENCES extension (id),
    version       text NOT NULL,
    manifest      jsonb NOT NULL,
    content_hash  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT extension_version_version_key UNIQUE (extension_id, version)
);
CREATE INDEX extension_version_content_hash_idx ON extension_version (content_hash);

CREATE TABLE extension_api_endpoint (
    id          uuid PRIMARY KEY,
    version_id  uuid NOT NULL REFERENCES extension_version (id),
    method      text NOT NULL,
    path        text NOT NULL,
    handler     text NOT NULL DEFAULT '',
    -- why the endpoint cannot be scheduled (method_not_allowed, path_params); NULL if it can.
    unschedulable_reason  text,
    CONSTRAINT extension_api_endpoint_key UNIQUE (version_id, method, path)
);

-- Tokens are looked up by hash on every request, before the tenant is known: a reference table.
CREATE TABLE api_token (
    id             uuid PRIMARY KEY,
    token_hash     text NOT NULL,
    tenant_id      text,
    user_id        text,
    user_timezone  text,
    is_admin       boolean NOT NULL DEFAULT false,
    permissions    text[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    CONSTRAINT api_token_hash_key UNIQUE (token_hash),
    CONSTRAINT api_token_owner_check CHECK (is_admin OR (tenant_id IS NOT NULL AND user_id IS NOT NULL))
);

-- ---------------------------------------------------------------- tenant tables (distributed)
CREATE TABLE tenant (
    tenant_id                text NOT NULL,
    timezone                 text,
    scheduled_tasks_enabled  boolean NOT NULL DEFAULT true,
    kill_switch              boolean NOT NULL DEFAULT false,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_pkey PRIMARY KEY (tenant_id)
);

CREATE TABLE tenant_extension_install (
    tenant_id          text NOT NULL,
    id                 uuid NOT NULL,
    extension_id       uuid NOT NULL,
    version_id         uuid NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    config             jsonb NOT NULL DEFAULT '{}'::jsonb,
    secret_names       text[] NOT NULL DEFAULT '{}',
    secrets_encrypted  bytea,
    providers          text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_extension_install_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT tenant_extension_install_extension_key UNIQUE (tenant_id, extension_id)
);
CREATE INDEX tenant_extension_install_version_idx ON tenant_extension_install (version_id);

CREATE TABLE tenant_extension_schedule (
    tenant_id             text NOT NULL,
    id                    uuid NOT NULL,
    install_id            uuid NOT NULL,
    extension_id          uuid NOT NULL,
    name                  text,
    endpoint_id           uuid NOT NULL,
    -- method/path are kept so a schedule whose endpoint vanished still shows what it called.
    endpoint_method       text NOT NULL,
    endpoint_path         text NOT NULL,
    cron                  text NOT NULL,
    timezone              text NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    payload               jsonb,
    revision              integer NOT NULL DEFAULT 1,
    last_run_at           timestamptz,
    last_run_status       text,
    last_error            text,
    last_success_at       timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    -- no-overlap lock: the run holding it and when the lock lapses if its worker died.
    running_run_id        uuid,
    running_until         timestamptz,
    -- set by the reconciler when an expected fire did not happen in time (silent stop).
    overdue_since         timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_extension_schedule_pkey PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX tenant_extension_schedule_name_key
    ON tenant_extension_schedule (tenant_id, install_id, lower(name)) WHERE name IS NOT NULL;
CREATE INDEX tenant_extension_schedule_install_idx
    ON tenant_extension_schedule (tenant_id, install_id);

CREATE TABLE extension_schedule_run (
    tenant_id         text NOT NULL,
    id                uuid NOT NULL,
    schedule_id       uuid NOT NULL,
    install_id        uuid NOT NULL,
    trigger           text NOT NULL,
    scheduled_for     timestamptz NOT NULL,
    status            text NOT NULL,
    skip_reason       text,
    skipped_count     integer,
    attempts          integer NOT NULL DEFAULT 0,
    started_at        timestamptz,
    finished_at       timestamptz,
    duration_ms       integer,
    http_status       integer,
    error             text,
    response_preview  text,
    idempotency_key   text,
    -- executor bookkeeping (postgres backend): when the run may be picked up next, and the lease.
    available_at      timestamptz,
    lease_owner       text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT extension_schedule_run_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT extension_schedule_run_trigger_check CHECK (trigger IN ('schedule', 'run_now')),
    CONSTRAINT extension_schedule_run_status_check
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'skipped'))
);
-- A fire is recorded exactly once per (schedule, scheduled_for), however often it is delivered.
CREATE UNIQUE INDEX extension_schedule_run_fire_key
    ON extension_schedule_run (tenant_id, schedule_id, scheduled_for) WHERE trigger = 'schedule';
CREATE UNIQUE INDEX extension_schedule_run_idempotency_key
    ON extension_schedule_run (tenant_id, schedule_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX extension_schedule_run_history_idx
    ON extension_schedule_run (tenant_id, schedule_id, id DESC);
CREATE INDEX extension_schedule_run_install_idx ON extension_schedule_run (tenant_id, install_id);
-- The executor's fair queue: per tenant, oldest first (see runs_claim).
CREATE INDEX extension_schedule_run_queue_idx
    ON extension_schedule_run (tenant_id, available_at) WHERE status = 'queued';
CREATE INDEX extension_schedule_run_lease_idx
    ON extension_schedule_run (lease_expires_at) WHERE status = 'running';

CREATE TABLE extension_audit_log (
    tenant_id     text NOT NULL,
    id            uuid NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    extension_id  uuid,
    actor_type    text NOT NULL,
    actor_id      text,
    action        text NOT NULL,
    target_type   text NOT NULL,
    target_id     text,
    changes       jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT extension_audit_log_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT extension_audit_log_actor_check CHECK (actor_type IN ('user', 'system', 'admin'))
);
CREATE INDEX extension_audit_log_extension_idx
    ON extension_audit_log (tenant_id, extension_id, id DESC);

-- Fixed-window counters for run-now limits, shared by every API process.
CREATE TABLE rate_limit_counter (
    tenant_id     text NOT NULL,
    bucket        text NOT NULL,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL,
    CONSTRAINT rate_limit_counter_pkey PRIMARY KEY (tenant_id, bucket, window_start)
);

-- postgres job backend: one handle per schedule (id extsched:{tenant}:{install}:{schedule}).
CREATE TABLE job_handle (
    tenant_id     text NOT NULL,
    schedule_id   uuid NOT NULL,
    handle_id     text NOT NULL,
    install_id    uuid NOT NULL,
    cron          text NOT NULL,
    timezone      text NOT NULL,
    paused        boolean NOT NULL DEFAULT false,
    note          text,
    -- the next fire this handle will deliver; NULL while paused.
    next_fire_at  timestamptz,
    -- the last fire instant the scheduler processed (for catch-up after downtime).
    last_fire_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_handle_pkey PRIMARY KEY (tenant_id, schedule_id)
);
CREATE INDEX job_handle_due_idx ON job_handle (next_fire_at) WHERE NOT paused;

-- ---------------------------------------------------------------- Citus distribution
DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_reference_table('extension');
        PERFORM create_reference_table('extension_version');
        PERFORM create_reference_table('extension_api_endpoint');
        PERFORM create_reference_table('api_token');
        PERFORM create_distributed_table('tenant', 'tenant_id');
        PERFORM create_distributed_table('tenant_extension_install', 'tenant_id', colocate_with => 'tenant');
        PERFORM create_distributed_table('tenant_extension_schedule', 'tenant_id', colocate_with => 'tenant');
        PERFORM create_distributed_table('extension_schedule_run', 'tenant_id', colocate_with => 'tenant');
        PERFORM create_distributed_table('extension_audit_log', 'tenant_id', colocate_with => 'tenant');
        PERFORM create_distributed_table('rate_limit_counter', 'tenant_id', colocate_with => 'tenant');
        PERFORM create_distributed_table('job_handle', 'tenant_id', colocate_with => 'tenant');
    END IF;
END
$citus$;
