-- Schedule policies (SPEC §5, §8, §9). NULL means "the default" (a service setting or the
-- classic behaviour), so old rows and old clients keep today's behaviour.
ALTER TABLE tenant_extension_schedule
    ADD COLUMN overlap         text,
    ADD COLUMN max_attempts    integer,
    ADD COLUMN timeout_ms      integer,
    ADD COLUMN jitter_seconds  integer,
    ADD COLUMN starts_at       timestamptz,
    ADD COLUMN ends_at         timestamptz,
    ADD COLUMN paused_until    timestamptz,
    ADD COLUMN dst_gap         text,
    ADD COLUMN dst_repeat      text,
    ADD COLUMN origin          text NOT NULL DEFAULT 'user',
    -- buffer_one: the run waiting for the running one to end (at most one).
    ADD COLUMN buffered_run_id uuid,
    ADD CONSTRAINT tenant_extension_schedule_overlap_check
        CHECK (overlap IS NULL OR overlap IN ('skip', 'buffer_one', 'allow')),
    ADD CONSTRAINT tenant_extension_schedule_dst_check
        CHECK ((dst_gap IS NULL OR dst_gap IN ('shift', 'skip'))
           AND (dst_repeat IS NULL OR dst_repeat IN ('first', 'last', 'both'))),
    ADD CONSTRAINT tenant_extension_schedule_origin_check CHECK (origin IN ('user', 'manifest'));

-- Replays (SPEC §5): the run a replay repeats; a run-now's one-off payload.
ALTER TABLE extension_schedule_run
    ADD COLUMN replay_of        uuid,
    ADD COLUMN payload_override jsonb;

-- The postgres backend's handles carry what bounds and shifts their fires.
ALTER TABLE job_handle
    ADD COLUMN dst_gap         text,
    ADD COLUMN dst_repeat      text,
    ADD COLUMN starts_at       timestamptz,
    ADD COLUMN ends_at         timestamptz,
    ADD COLUMN paused_until    timestamptz,
    ADD COLUMN jitter_seconds  integer;

-- A replay is a run of its own trigger (SPEC §5).
ALTER TABLE extension_schedule_run DROP CONSTRAINT extension_schedule_run_trigger_check;
ALTER TABLE extension_schedule_run ADD CONSTRAINT extension_schedule_run_trigger_check
    CHECK (trigger IN ('schedule', 'run_now', 'replay'));
