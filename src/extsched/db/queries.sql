-- Every statement the service runs, by name. Parameters use psycopg's %(name)s style.
-- Every statement on a tenant table filters by tenant_id, except those marked [cross-tenant]
-- (admin listings, the scheduler's due-claim and the executor's queue, which are global by design).

-- ================================================================ tokens
-- name: token_insert
-- A new token (its hash only); returns when it was created.
INSERT INTO api_token (id, token_hash, tenant_id, user_id, user_timezone, is_admin, permissions, expires_at)
VALUES (%(id)s, %(token_hash)s, %(tenant_id)s, %(user_id)s, %(user_timezone)s, %(is_admin)s, %(permissions)s, %(expires_at)s)
RETURNING created_at;

-- name: token_by_hash
-- Every API request: a live token (not revoked, not expired) by the hash of its value.
SELECT id, tenant_id, user_id, user_timezone, is_admin, permissions, last_used_at
FROM api_token
WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now());

-- name: token_touch
-- Records a token's use at most once a minute (the caller also skips it while fresh).
UPDATE api_token SET last_used_at = now()
WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds');

-- name: token_list
-- Tokens for the CLI and the admin API, oldest first; revoked ones only when asked.
SELECT id, tenant_id, user_id, user_timezone, is_admin, permissions, created_at, revoked_at,
       expires_at, last_used_at
FROM api_token
WHERE (%(tenant_id)s::text IS NULL OR tenant_id = %(tenant_id)s)
  AND (%(include_revoked)s OR revoked_at IS NULL)
ORDER BY created_at, id;

-- name: token_revoke
-- Revokes a token; its UI sessions end with it (ui_session_get joins the token).
UPDATE api_token SET revoked_at = now() WHERE id = %(id)s AND revoked_at IS NULL
RETURNING tenant_id, user_id, is_admin;

-- ================================================================ UI sessions and SSO
-- name: ui_session_insert
-- Opens a UI session with the principal copied from its token or JWT.
INSERT INTO ui_session (id, token_id, tenant_id, user_id, user_timezone, permissions, expires_at)
VALUES (%(id)s, %(token_id)s, %(tenant_id)s, %(user_id)s, %(user_timezone)s, %(permissions)s,
        %(expires_at)s);

-- name: ui_session_get
-- Every UI request: a session that was not ended, has not expired, and whose token (if it was
-- opened with one) is neither revoked nor expired.
SELECT s.id, s.token_id, s.tenant_id, s.user_id, s.user_timezone, s.permissions
FROM ui_session s
LEFT JOIN api_token t ON t.id = s.token_id
WHERE s.id = %(id)s AND s.ended_at IS NULL AND s.expires_at > now()
  AND (s.token_id IS NULL
       OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())));

-- name: ui_session_end
-- Signing out: the session ends for every copy of its cookie.
UPDATE ui_session SET ended_at = now() WHERE id = %(id)s AND ended_at IS NULL;

-- name: ui_session_prune
-- Drops sessions that ended or expired a day ago (run at sign-in; sessions are few).
DELETE FROM ui_session
WHERE expires_at < now() - interval '1 day' OR ended_at < now() - interval '1 day';

-- name: sso_jti_claim
-- Records a JWT id used for browser sign-in; no row back means it was used before.
INSERT INTO sso_jti (jti, expires_at) VALUES (%(jti)s, %(expires_at)s)
ON CONFLICT (jti) DO NOTHING
RETURNING jti;

-- name: sso_jti_prune
-- Forgets used JWT ids a day after their JWT expired.
DELETE FROM sso_jti WHERE expires_at < now() - interval '1 day';

-- ================================================================ tenants
-- name: tenant_ensure
-- A tenant comes into being with its first token or JWT (idempotent).
INSERT INTO tenant (tenant_id) VALUES (%(tenant_id)s) ON CONFLICT (tenant_id) DO NOTHING;

-- name: tenant_get
-- A tenant's defaults and switches.
SELECT tenant_id, timezone, scheduled_tasks_enabled, kill_switch, created_at, updated_at
FROM tenant WHERE tenant_id = %(tenant_id)s;

-- name: tenant_lock
-- Serializes schedule creation per tenant so quotas hold under concurrency.
SELECT tenant_id, timezone, scheduled_tasks_enabled, kill_switch
FROM tenant WHERE tenant_id = %(tenant_id)s FOR UPDATE;

-- name: tenant_upsert
-- Admin: creates a tenant or sets its default zone and feature flag.
INSERT INTO tenant (tenant_id, timezone, scheduled_tasks_enabled)
VALUES (%(tenant_id)s, %(timezone)s, coalesce(%(scheduled_tasks_enabled)s, true))
ON CONFLICT (tenant_id) DO UPDATE SET
    timezone = CASE WHEN %(set_timezone)s THEN excluded.timezone ELSE tenant.timezone END,
    scheduled_tasks_enabled = coalesce(%(scheduled_tasks_enabled)s, tenant.scheduled_tasks_enabled),
    updated_at = now()
RETURNING tenant_id, timezone, scheduled_tasks_enabled, kill_switch, created_at, updated_at;

-- name: tenant_set_kill_switch
-- Admin: flips the kill switch; no row back when it was already so.
UPDATE tenant SET kill_switch = %(enabled)s, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND kill_switch IS DISTINCT FROM %(enabled)s;

-- ================================================================ registry
-- name: extension_by_name
-- Publish: the extension a manifest name belongs to.
SELECT id, name, publisher FROM extension WHERE name = %(name)s;

-- name: extension_get
-- An extension by id (install checks it exists).
SELECT id, name, publisher FROM extension WHERE id = %(id)s;

-- name: extension_insert
-- Publish: registers an extension name once (concurrent publishes race safely).
INSERT INTO extension (id, name, publisher) VALUES (%(id)s, %(name)s, %(publisher)s)
ON CONFLICT (name) DO NOTHING;

-- name: version_by_name
-- Publish: an existing name+version (same content is idempotent, else 409).
SELECT id, extension_id, version, content_hash, manifest
FROM extension_version WHERE extension_id = %(extension_id)s AND version = %(version)s;

-- name: version_get
-- A version with its manifest and extension name.
SELECT v.id, v.extension_id, v.version, v.content_hash, v.manifest, e.name, e.publisher
FROM extension_version v JOIN extension e ON e.id = v.extension_id
WHERE v.id = %(id)s;

-- name: version_by_content_hash
-- The reference Runner resolves an envelope to its manifest by content hash.
SELECT v.id, v.extension_id, v.version, v.content_hash, v.manifest
FROM extension_version v WHERE v.content_hash = %(content_hash)s
ORDER BY v.created_at LIMIT 1;

-- name: version_insert
-- Publish: stores a version and its manifest.
INSERT INTO extension_version (id, extension_id, version, manifest, content_hash)
VALUES (%(id)s, %(extension_id)s, %(version)s, %(manifest)s, %(content_hash)s)
ON CONFLICT (extension_id, version) DO NOTHING;

-- name: version_delete
-- Admin: deletes an unused version (its endpoints go first, same transaction).
DELETE FROM extension_version WHERE id = %(id)s;

-- name: version_ids
-- Backfill: the versions to (re)write endpoint rows for, oldest first.
SELECT id FROM extension_version
WHERE (%(version_id)s::uuid IS NULL OR id = %(version_id)s) ORDER BY created_at, id;

-- name: registry_list
-- Admin and the UI's catalogue: every extension with its versions (descriptions, default
-- schedules).
SELECT e.id AS extension_id, e.name, e.publisher, v.id AS version_id, v.version, v.created_at,
       v.manifest->>'description' AS description, v.manifest->'schedules' AS schedules
FROM extension e LEFT JOIN extension_version v ON v.extension_id = e.id
ORDER BY e.name, v.created_at, v.id;

-- name: version_in_use
-- [cross-tenant] a version may not be deleted while any tenant's install uses it.
SELECT EXISTS (SELECT 1 FROM tenant_extension_install WHERE version_id = %(version_id)s) AS in_use;

-- name: endpoints_insert
-- Publish and backfill: a version's normalized endpoints in one statement.
INSERT INTO extension_api_endpoint (id, version_id, method, path, handler, unschedulable_reason)
SELECT * FROM unnest(%(ids)s::uuid[], %(version_ids)s::uuid[], %(methods)s::text[],
                     %(paths)s::text[], %(handlers)s::text[], %(reasons)s::text[])
ON CONFLICT (version_id, method, path) DO NOTHING;

-- name: endpoints_for_version
-- Every endpoint of a version (remap planning, UI).
SELECT id, version_id, method, path, handler, unschedulable_reason FROM extension_api_endpoint
WHERE version_id = %(version_id)s ORDER BY path, method;

-- name: endpoints_page
-- The endpoint picker: a keyset page of a version, filtered by text and schedulability.
SELECT id, version_id, method, path, handler, unschedulable_reason FROM extension_api_endpoint
WHERE version_id = %(version_id)s
  AND (%(q)s::text IS NULL OR method ILIKE %(q)s OR path ILIKE %(q)s OR handler ILIKE %(q)s)
  AND (%(after_path)s::text IS NULL OR (path, method) > (%(after_path)s, %(after_method)s))
  AND (NOT %(schedulable_only)s OR unschedulable_reason IS NULL)
ORDER BY path, method
LIMIT %(limit)s;

-- name: endpoint_get
-- Schedule validation: one endpoint by id.
SELECT id, version_id, method, path, handler, unschedulable_reason FROM extension_api_endpoint WHERE id = %(id)s;

-- name: endpoints_delete_for_version
-- Version delete: its endpoint rows first (no cascades).
DELETE FROM extension_api_endpoint WHERE version_id = %(version_id)s;

-- ================================================================ installs
-- name: install_insert
-- Installs an extension version for a tenant (unique per tenant and extension).
INSERT INTO tenant_extension_install
    (tenant_id, id, extension_id, version_id, enabled, config, secret_names, secrets_encrypted,
     providers, signing_secrets_encrypted)
VALUES (%(tenant_id)s, %(id)s, %(extension_id)s, %(version_id)s, true, %(config)s,
        %(secret_names)s, %(secrets_encrypted)s, %(providers)s, %(signing_secrets_encrypted)s);

-- name: install_signing_secrets_get
-- The sealed signing secrets of an install, by id (the reference Runner signs with them).
SELECT tenant_id, id, signing_secrets_encrypted
FROM tenant_extension_install
WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: install_signing_secrets_init
-- Gives an install made before signing secrets existed its first one; keeps one already set
-- (two first readers race: both see the winner's). Returns the blob now stored.
UPDATE tenant_extension_install
SET signing_secrets_encrypted = COALESCE(signing_secrets_encrypted, %(blob)s)
WHERE tenant_id = %(tenant_id)s AND id = %(id)s
RETURNING signing_secrets_encrypted;

-- name: install_signing_secrets_set
-- Replaces the sealed signing secrets of an install (rotation, under the install row lock).
UPDATE tenant_extension_install
SET signing_secrets_encrypted = %(blob)s, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: install_get
-- A tenant's install of an extension, with its version and extension name.
SELECT i.tenant_id, i.id, i.extension_id, i.version_id, i.enabled, i.config, i.secret_names,
       i.secrets_encrypted, i.providers, i.created_at, i.updated_at,
       i.signing_secrets_encrypted, e.name, v.version, v.content_hash, v.manifest
FROM tenant_extension_install i
JOIN extension e ON e.id = i.extension_id
JOIN extension_version v ON v.id = i.version_id
WHERE i.tenant_id = %(tenant_id)s AND i.extension_id = %(extension_id)s;

-- name: install_get_for_update
-- The same, locked for a settings change, update or uninstall.
SELECT i.tenant_id, i.id, i.extension_id, i.version_id, i.enabled, i.config, i.secret_names,
       i.secrets_encrypted, i.providers, i.created_at, i.updated_at,
       i.signing_secrets_encrypted, e.name, v.version, v.content_hash, v.manifest
FROM tenant_extension_install i
JOIN extension e ON e.id = i.extension_id
JOIN extension_version v ON v.id = i.version_id
WHERE i.tenant_id = %(tenant_id)s AND i.extension_id = %(extension_id)s
FOR UPDATE OF i;

-- name: install_list
-- Every install of a tenant.
SELECT i.tenant_id, i.id, i.extension_id, i.version_id, i.enabled, i.config, i.secret_names,
       i.secrets_encrypted, i.providers, i.created_at, i.updated_at,
       i.signing_secrets_encrypted, e.name, v.version, v.content_hash, v.manifest
FROM tenant_extension_install i
JOIN extension e ON e.id = i.extension_id
JOIN extension_version v ON v.id = i.version_id
WHERE i.tenant_id = %(tenant_id)s
ORDER BY e.name;

-- name: install_update_settings
-- Writes an install's config, secret names, sealed secrets and providers.
UPDATE tenant_extension_install
SET config = %(config)s, secret_names = %(secret_names)s, secrets_encrypted = %(secrets_encrypted)s,
    providers = %(providers)s, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: install_set_enabled
-- Disables or enables an install; no row back when unchanged (idempotent).
UPDATE tenant_extension_install SET enabled = %(enabled)s, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND enabled IS DISTINCT FROM %(enabled)s;

-- name: install_set_version
-- Update: moves an install to another version (with the remap, same transaction).
UPDATE tenant_extension_install SET version_id = %(version_id)s, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: install_delete
-- Uninstall, last step: the install row itself.
DELETE FROM tenant_extension_install WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: runs_delete_for_install
-- Uninstall: the install's runs (before its schedules; no cascades).
DELETE FROM extension_schedule_run WHERE tenant_id = %(tenant_id)s AND install_id = %(install_id)s;

-- name: schedules_delete_for_install
-- Uninstall: the install's schedules (after their handles and runs).
DELETE FROM tenant_extension_schedule WHERE tenant_id = %(tenant_id)s AND install_id = %(install_id)s;

-- ================================================================ audit
-- name: audit_insert
-- One audit entry, in the transaction of the change it records.
INSERT INTO extension_audit_log
    (tenant_id, id, extension_id, actor_type, actor_id, action, target_type, target_id,
     target_name, changes)
VALUES (%(tenant_id)s, %(id)s, %(extension_id)s, %(actor_type)s, %(actor_id)s, %(action)s,
        %(target_type)s, %(target_id)s, %(target_name)s, %(changes)s);

-- name: audit_page
-- An install's audit entries, newest first, one keyset page, each saying whether its schedule
-- or install target still exists (so a UI links only to what is there; one PK probe a row).
SELECT a.id, a.at, a.actor_type, a.actor_id, a.action, a.target_type, a.target_id,
       a.target_name, a.changes,
       CASE a.target_type
           WHEN 'schedule' THEN EXISTS (
               SELECT 1 FROM tenant_extension_schedule s
               WHERE s.tenant_id = a.tenant_id AND s.id = a.target_id::uuid)
           WHEN 'install' THEN EXISTS (
               SELECT 1 FROM tenant_extension_install i
               WHERE i.tenant_id = a.tenant_id AND i.id = a.target_id::uuid)
           ELSE false
       END AS target_exists
FROM extension_audit_log a
WHERE a.tenant_id = %(tenant_id)s AND a.extension_id = %(extension_id)s
  AND (%(before_id)s::uuid IS NULL OR a.id < %(before_id)s)
ORDER BY a.id DESC
LIMIT %(limit)s;

-- ================================================================ postgres job backend
-- name: handles_put
-- next_fire_at is recomputed only when what shapes the fires changed (timing, DST choice,
-- window, pause) or the handle was resumed, so an unchanged handle keeps its pending fire.
INSERT INTO job_handle AS h
    (tenant_id, schedule_id, handle_id, install_id, cron, timezone, paused, note, next_fire_at,
     dst_gap, dst_repeat, starts_at, ends_at, paused_until, jitter_seconds)
SELECT %(tenant_id)s, * FROM unnest(%(schedule_ids)s::uuid[], %(handle_ids)s::text[],
    %(install_ids)s::uuid[], %(crons)s::text[], %(timezones)s::text[], %(paused)s::bool[],
    %(notes)s::text[], %(next_fire_ats)s::timestamptz[], %(dst_gaps)s::text[],
    %(dst_repeats)s::text[], %(starts_ats)s::timestamptz[], %(ends_ats)s::timestamptz[],
    %(paused_untils)s::timestamptz[], %(jitter_seconds)s::int[])
ON CONFLICT (tenant_id, schedule_id) DO UPDATE SET
    handle_id = excluded.handle_id,
    install_id = excluded.install_id,
    cron = excluded.cron,
    timezone = excluded.timezone,
    paused = excluded.paused,
    note = excluded.note,
    dst_gap = excluded.dst_gap,
    dst_repeat = excluded.dst_repeat,
    next_fire_at = CASE
        WHEN excluded.paused THEN NULL
        WHEN h.paused OR h.next_fire_at IS NULL OR h.cron <> excluded.cron
             OR h.timezone <> excluded.timezone
             OR coalesce(h.dst_gap, 'shift') <> coalesce(excluded.dst_gap, 'shift')
             OR coalesce(h.dst_repeat, 'first') <> coalesce(excluded.dst_repeat, 'first')
             OR (h.starts_at, h.ends_at, h.paused_until)
                IS DISTINCT FROM (excluded.starts_at, excluded.ends_at, excluded.paused_until)
        THEN excluded.next_fire_at
        ELSE h.next_fire_at END,
    starts_at = excluded.starts_at,
    ends_at = excluded.ends_at,
    paused_until = excluded.paused_until,
    jitter_seconds = excluded.jitter_seconds,
    updated_at = now();

-- name: handles_delete
-- postgres backend: removes schedules' handles (delete, uninstall).
DELETE FROM job_handle WHERE tenant_id = %(tenant_id)s AND schedule_id = ANY(%(schedule_ids)s::uuid[]);

-- name: handles_list
-- [cross-tenant] when tenant_id is NULL (reconciliation, admin listing).
SELECT tenant_id, schedule_id, handle_id, install_id, cron, timezone, paused, note, next_fire_at
FROM job_handle
WHERE (%(tenant_id)s::text IS NULL OR tenant_id = %(tenant_id)s)
ORDER BY tenant_id, schedule_id;

-- name: version_lock_shared
-- Held while installing or updating onto a version, so a concurrent delete waits.
SELECT id FROM extension_version WHERE id = %(id)s FOR SHARE;

-- name: version_lock
-- Version delete: locks the version against a concurrent install.
SELECT id FROM extension_version WHERE id = %(id)s FOR UPDATE;

-- ================================================================ schedules
-- name: schedule_insert
-- Creates a schedule (the name is unique per install, case-insensitively).
INSERT INTO tenant_extension_schedule
    (tenant_id, id, install_id, extension_id, name, endpoint_id, endpoint_method, endpoint_path,
     cron, timezone, enabled, disabled_reason, payload, origin,
     overlap, max_attempts, timeout_ms, jitter_seconds, starts_at, ends_at, paused_until,
     dst_gap, dst_repeat)
VALUES (%(tenant_id)s, %(id)s, %(install_id)s, %(extension_id)s, %(name)s, %(endpoint_id)s,
        %(endpoint_method)s, %(endpoint_path)s, %(cron)s, %(timezone)s, %(enabled)s,
        %(disabled_reason)s, %(payload)s, %(origin)s,
        %(overlap)s, %(max_attempts)s, %(timeout_ms)s, %(jitter_seconds)s, %(starts_at)s,
        %(ends_at)s, %(paused_until)s, %(dst_gap)s, %(dst_repeat)s)
RETURNING *;

-- name: schedule_view
-- One schedule for reading, with what decides whether it would fire, in one round trip: the
-- tenant's switches (a row even when the schedule is missing) and its install's state.
SELECT t.scheduled_tasks_enabled AS t_enabled, t.kill_switch AS t_kill_switch,
       coalesce(i.enabled, false) AS i_enabled, s.*
FROM tenant t
LEFT JOIN tenant_extension_schedule s ON s.tenant_id = t.tenant_id AND s.id = %(id)s
LEFT JOIN tenant_extension_install i ON i.tenant_id = s.tenant_id AND i.id = s.install_id
WHERE t.tenant_id = %(tenant_id)s;

-- name: install_view
-- An install for listing its schedules, with the tenant's switches (a row even when the
-- extension is not installed), without the manifest.
SELECT t.scheduled_tasks_enabled AS t_enabled, t.kill_switch AS t_kill_switch,
       i.id, i.enabled
FROM tenant t
LEFT JOIN tenant_extension_install i
    ON i.tenant_id = t.tenant_id AND i.extension_id = %(extension_id)s
WHERE t.tenant_id = %(tenant_id)s;

-- name: install_for_change
-- Create: the tenant's default zone and switches (a row even when the extension is not
-- installed), what schedule validation needs of the install and the requested endpoint (ep_*,
-- whatever version it belongs to; the caller compares), in one round trip.
SELECT t.scheduled_tasks_enabled AS t_enabled, t.kill_switch AS t_kill_switch,
       t.timezone AS t_timezone,
       i.id, i.extension_id, i.version_id, i.enabled, e.name, v.version,
       ep.id AS ep_id, ep.version_id AS ep_version_id, ep.method AS ep_method,
       ep.path AS ep_path, ep.handler AS ep_handler,
       ep.unschedulable_reason AS ep_unschedulable_reason
FROM tenant t
LEFT JOIN (tenant_extension_install i
           JOIN extension e ON e.id = i.extension_id
           JOIN extension_version v ON v.id = i.version_id)
    ON i.tenant_id = t.tenant_id AND i.extension_id = %(extension_id)s
LEFT JOIN extension_api_endpoint ep ON ep.id = %(endpoint_id)s::uuid
WHERE t.tenant_id = %(tenant_id)s;

-- name: schedule_for_change
-- Patch and run-now: one schedule locked for the change, with its tenant's switches and what
-- they need of its install, in one round trip (no row when the schedule is missing).
SELECT t.scheduled_tasks_enabled AS t_enabled, t.kill_switch AS t_kill_switch,
       i.enabled AS i_enabled, i.version_id AS i_version_id, e.name AS i_name,
       v.version AS i_version, s.*
FROM tenant_extension_schedule s
JOIN tenant t ON t.tenant_id = s.tenant_id
JOIN tenant_extension_install i ON i.tenant_id = s.tenant_id AND i.id = s.install_id
JOIN extension e ON e.id = i.extension_id
JOIN extension_version v ON v.id = i.version_id
WHERE s.tenant_id = %(tenant_id)s AND s.id = %(id)s
FOR UPDATE OF s;

-- name: schedule_get
-- One schedule of a tenant.
SELECT * FROM tenant_extension_schedule WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: schedule_get_for_update
-- One schedule, locked for a change (optimistic revision check follows).
SELECT * FROM tenant_extension_schedule WHERE tenant_id = %(tenant_id)s AND id = %(id)s FOR UPDATE;

-- name: schedules_for_install
-- An install's schedules, oldest first.
SELECT * FROM tenant_extension_schedule
WHERE tenant_id = %(tenant_id)s AND install_id = %(install_id)s
ORDER BY created_at, id;

-- name: schedules_for_install_for_update
-- The same, locked (disable, enable, update of the install).
SELECT * FROM tenant_extension_schedule
WHERE tenant_id = %(tenant_id)s AND install_id = %(install_id)s
ORDER BY created_at, id FOR UPDATE;

-- name: schedule_counts
-- Quotas: schedules of the install and of the tenant (under the tenant lock, so the count
-- sees every create that took it before), with the install's and tenant's switches as of now
-- (what the new schedule's handle follows).
SELECT count(*) FILTER (WHERE install_id = %(install_id)s) AS per_install, count(*) AS per_tenant,
       (SELECT i.enabled FROM tenant_extension_install i
        WHERE i.tenant_id = %(tenant_id)s AND i.id = %(install_id)s) AS install_enabled,
       (SELECT t.kill_switch FROM tenant t WHERE t.tenant_id = %(tenant_id)s) AS kill_switch
FROM tenant_extension_schedule WHERE tenant_id = %(tenant_id)s;

-- name: schedule_quota
-- Create: the tenant's row lock (held to the commit), then the quota counts and the switches
-- as schedule_counts reads them, in one round trip (migration 0011 says why a function).
SELECT * FROM extension_schedule_quota(%(tenant_id)s, %(install_id)s);

-- name: schedule_update
-- Writes a changed schedule and bumps its revision.
UPDATE tenant_extension_schedule SET
    name = %(name)s, endpoint_id = %(endpoint_id)s, endpoint_method = %(endpoint_method)s,
    endpoint_path = %(endpoint_path)s, cron = %(cron)s, timezone = %(timezone)s,
    enabled = %(enabled)s, disabled_reason = %(disabled_reason)s, payload = %(payload)s,
    consecutive_failures = %(consecutive_failures)s,
    overlap = %(overlap)s, max_attempts = %(max_attempts)s, timeout_ms = %(timeout_ms)s,
    jitter_seconds = %(jitter_seconds)s, starts_at = %(starts_at)s, ends_at = %(ends_at)s,
    paused_until = %(paused_until)s, dst_gap = %(dst_gap)s, dst_repeat = %(dst_repeat)s,
    revision = revision + 1, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND revision = %(revision)s
RETURNING *;

-- name: schedule_delete
-- Deletes a schedule (after its handle and runs).
DELETE FROM tenant_extension_schedule WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: runs_delete_for_schedule
-- Schedule delete: its runs first (no cascades).
DELETE FROM extension_schedule_run WHERE tenant_id = %(tenant_id)s AND schedule_id = %(schedule_id)s;

-- name: schedules_disable_all
-- Disables every enabled schedule of an install; returns those it changed.
UPDATE tenant_extension_schedule
SET enabled = false, disabled_reason = NULL, revision = revision + 1, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND install_id = %(install_id)s AND enabled
RETURNING *;

-- name: install_state
-- Whether an install would fire now: its enabled flag and the tenant's kill switch.
SELECT i.enabled AS install_enabled, t.kill_switch
FROM tenant_extension_install i JOIN tenant t ON t.tenant_id = i.tenant_id
WHERE i.tenant_id = %(tenant_id)s AND i.id = %(install_id)s;

-- ================================================================ runs
-- name: runs_insert_fires
-- A fire is recorded once per (schedule, scheduled_for): a repeated delivery inserts nothing.
-- Returns only the missed fires it recorded (status skipped), the ones the caller books: a herd's
-- tick writes 500 queued runs and reads back none.
WITH inserted AS (
    INSERT INTO extension_schedule_run
        (tenant_id, id, schedule_id, install_id, trigger, scheduled_for, status, skip_reason,
         skipped_count, available_at, finished_at)
    SELECT * FROM unnest(%(tenant_ids)b::text[], %(ids)b::uuid[], %(schedule_ids)b::uuid[],
        %(install_ids)b::uuid[], %(triggers)b::text[], %(scheduled_fors)b::timestamptz[],
        %(statuses)b::text[], %(skip_reasons)b::text[], %(skipped_counts)b::int[],
        %(available_ats)b::timestamptz[], %(finished_ats)b::timestamptz[])
    ON CONFLICT (tenant_id, schedule_id, scheduled_for) WHERE trigger = 'schedule' DO NOTHING
    RETURNING tenant_id, id, schedule_id, status
)
SELECT tenant_id, id, schedule_id FROM inserted WHERE status = 'skipped';

-- name: run_fire_get
-- The run recorded for one fire of a schedule, if any (exactly once per fire).
SELECT * FROM extension_schedule_run
WHERE tenant_id = %(tenant_id)s AND schedule_id = %(schedule_id)s
  AND scheduled_for = %(scheduled_for)s AND trigger = 'schedule';

-- name: run_insert_now
-- Run-now and replay: a queued run (a run-now's idempotency key unique per schedule; a replay
-- keeps the original's scheduled_for and names it in replay_of).
INSERT INTO extension_schedule_run
    (tenant_id, id, schedule_id, install_id, trigger, scheduled_for, status, idempotency_key,
     available_at, created_at, payload_override, replay_of)
VALUES (%(tenant_id)s, %(id)s, %(schedule_id)s, %(install_id)s, %(trigger)s, %(scheduled_for)s,
        'queued', %(idempotency_key)s, %(now)s, %(now)s, %(payload_override)s, %(replay_of)s)
RETURNING *;

-- name: run_by_idempotency_key
-- Run-now: the run an Idempotency-Key already started.
SELECT * FROM extension_schedule_run
WHERE tenant_id = %(tenant_id)s AND schedule_id = %(schedule_id)s
  AND idempotency_key = %(idempotency_key)s;

-- name: run_forget_idempotency_key
-- Keys are honoured for 24 h; an older run gives its key up so it can be used again.
UPDATE extension_schedule_run SET idempotency_key = NULL
WHERE tenant_id = %(tenant_id)s AND schedule_id = %(schedule_id)s
  AND idempotency_key = %(idempotency_key)s AND created_at < %(cutoff)s;

-- name: run_get
-- One run of a tenant.
SELECT * FROM extension_schedule_run WHERE tenant_id = %(tenant_id)s AND id = %(id)s;

-- name: runs_list
-- The run listings (SPEC §5), one keyset page newest first by (scheduled_for, id), the order of
-- the indexes of migration 0007: a tenant's runs, or one schedule's or
-- one extension's, filtered by status, trigger and [since, until) on scheduled_for, each with its
-- schedule's name and extension. A NULL parameter is no filter; the statement is planned with
-- its values (Database.fetch_all(prepare=False)), so each filter reaches its index (0007).
SELECT r.*, s.name AS schedule_name, s.extension_id
FROM (
    SELECT * FROM extension_schedule_run
    WHERE tenant_id = %(tenant_id)s
      AND (%(schedule_id)s::uuid IS NULL OR schedule_id = %(schedule_id)s)
      AND (%(extension_id)s::uuid IS NULL OR install_id = (
          SELECT i.id FROM tenant_extension_install i
          WHERE i.tenant_id = %(tenant_id)s AND i.extension_id = %(extension_id)s))
      AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
      AND (%(triggers)s::text[] IS NULL OR trigger = ANY(%(triggers)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR scheduled_for >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR scheduled_for < %(until)s)
      AND (%(before_at)s::timestamptz IS NULL
           OR (scheduled_for, id) < (%(before_at)s::timestamptz, %(before_id)s::uuid))
    ORDER BY scheduled_for DESC, id DESC
    LIMIT %(limit)s
) r
LEFT JOIN tenant_extension_schedule s ON s.tenant_id = r.tenant_id AND s.id = r.schedule_id
ORDER BY r.scheduled_for DESC, r.id DESC;

-- name: runs_csv_batch
-- The CSV export (SPEC §5): one keyset batch of runs_list's rows (same filters, same order, same
-- indexes; keep the two WHERE clauses alike), formatted by the database: times as RFC 3339 UTC
-- with whole seconds, and text a spreadsheet would run as a formula prefixed with an apostrophe
-- (OWASP "CSV injection"). The first two columns are the keyset, not part of the file.
SELECT r.scheduled_for AS k_at, r.id AS k_id,
       r.id::text, r.schedule_id::text,
       CASE WHEN s.name ~ '^[=+@\t\r-]' THEN '''' || s.name ELSE s.name END,
       s.extension_id::text, r.trigger, r.replay_of::text,
       to_char(r.scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       r.status, r.skip_reason, r.skipped_count, r.attempts,
       to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       r.duration_ms, r.http_status,
       CASE WHEN r.error ~ '^[=+@\t\r-]' THEN '''' || r.error ELSE r.error END,
       CASE WHEN r.response_preview ~ '^[=+@\t\r-]' THEN '''' || r.response_preview
            ELSE r.response_preview END
FROM (
    SELECT * FROM extension_schedule_run
    WHERE tenant_id = %(tenant_id)s
      AND (%(schedule_id)s::uuid IS NULL OR schedule_id = %(schedule_id)s)
      AND (%(extension_id)s::uuid IS NULL OR install_id = (
          SELECT i.id FROM tenant_extension_install i
          WHERE i.tenant_id = %(tenant_id)s AND i.extension_id = %(extension_id)s))
      AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
      AND (%(triggers)s::text[] IS NULL OR trigger = ANY(%(triggers)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR scheduled_for >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR scheduled_for < %(until)s)
      AND (%(before_at)s::timestamptz IS NULL
           OR (scheduled_for, id) < (%(before_at)s::timestamptz, %(before_id)s::uuid))
    ORDER BY scheduled_for DESC, id DESC
    LIMIT %(limit)s
) r
LEFT JOIN tenant_extension_schedule s ON s.tenant_id = r.tenant_id AND s.id = r.schedule_id
ORDER BY r.scheduled_for DESC, r.id DESC;

-- name: runs_filter_options
-- The Runs page's pickers: every schedule of a tenant with its extension's name.
SELECT s.id, s.name, s.endpoint_method, s.endpoint_path, s.extension_id, e.name AS extension_name
FROM tenant_extension_schedule s
JOIN extension e ON e.id = s.extension_id
WHERE s.tenant_id = %(tenant_id)s
ORDER BY e.name, lower(coalesce(s.name, s.endpoint_path)), s.id;

-- name: runs_claim
-- [cross-tenant] The executor's queue, fair across tenants and work-conserving: a loose index
-- scan finds each tenant with due runs (O(tenants), not O(queue)); a tenant's k-th due run
-- stands at level (runs the tenant has in flight on every worker, either backend) + k, and the
-- free slots go to the lowest levels first. So a tenant alone takes every free slot, and as
-- soon as another tenant has a run due, the next slots go to the tenant with the fewest runs in
-- flight (max-min fair share). Among equals the oldest due run goes first, then the tenants in
-- an order shuffled by each claim's `salt`: not by run id, which would serve a herd in insertion
-- order (fast runs leave every tenant at the same level, so the tenant whose fires the
-- scheduler wrote last would wait for everyone else's backlog). SKIP LOCKED lets
-- many workers claim disjoint runs; the UPDATE matches status = 'queued' so a run is claimed
-- by exactly one of them.
WITH RECURSIVE tenants(tenant_id, first, depth) AS (
    -- At most `max_tenants` tenants with due runs, from the first one after `after` (the
    -- caller's cursor: where its previous claim stopped), wrapping around; so with more
    -- tenants waiting than that, successive claims take them in turn (round-robin) and a claim
    -- costs O(max_tenants), not O(tenants waiting).
    SELECT f.tenant_id, f.tenant_id, 1
    FROM (SELECT coalesce(
        (SELECT tenant_id FROM extension_schedule_run
         WHERE status = 'queued' AND available_at <= %(now)s AND tenant_id > %(after)s
         ORDER BY tenant_id LIMIT 1),
        (SELECT tenant_id FROM extension_schedule_run
         WHERE status = 'queued' AND available_at <= %(now)s ORDER BY tenant_id LIMIT 1))
        AS tenant_id) f
    UNION ALL
    SELECT coalesce(
        (SELECT q.tenant_id FROM extension_schedule_run q
         WHERE q.status = 'queued' AND q.available_at <= %(now)s AND q.tenant_id > t.tenant_id
         ORDER BY q.tenant_id LIMIT 1),
        (SELECT q.tenant_id FROM extension_schedule_run q
         WHERE q.status = 'queued' AND q.available_at <= %(now)s
         ORDER BY q.tenant_id LIMIT 1)),
        t.first, t.depth + 1
    FROM tenants t
    WHERE t.tenant_id IS NOT NULL AND t.depth < %(max_tenants)s
      AND (t.depth = 1 OR t.tenant_id <> t.first)
),
in_flight AS (
    -- Leased runs per tenant, on every worker process (a scan of the running-runs index: at
    -- most the workers' total concurrency, and the dead entries finished runs left there, see
    -- migration 0010); a lapsed lease no longer counts.
    SELECT tenant_id, n FROM extension_runs_in_flight(%(now)s)
),
waiting AS (
    SELECT t.tenant_id, coalesce(f.n, 0) AS n
    FROM tenants t LEFT JOIN in_flight f ON f.tenant_id = t.tenant_id
    WHERE t.tenant_id IS NOT NULL AND (t.depth = 1 OR t.tenant_id <> t.first)
),
bounds AS (
    -- Filling every waiting tenant up to level top + ceil(limit / tenants) yields at least
    -- `limit` candidates when each has that many due, so no tenant needs more: the claim reads
    -- about `limit` candidates plus the in-flight spread, not tenants x limit. A tenant with
    -- fewer due runs leaves the claim short; the executor claims again at once.
    SELECT max(n) AS top, ceil(%(limit)s::numeric / greatest(count(*), 1))::int AS share
    FROM waiting
),
candidates AS (
    SELECT c.tenant_id, c.id, c.available_at, w.n + c.rank AS level
    FROM waiting w
    CROSS JOIN bounds b
    CROSS JOIN LATERAL (
        SELECT q.tenant_id, q.id, q.available_at,
               row_number() OVER (ORDER BY q.available_at, q.id) AS rank
        FROM extension_schedule_run q
        WHERE q.tenant_id = w.tenant_id AND q.status = 'queued' AND q.available_at <= %(now)s
        ORDER BY q.available_at, q.id
        LIMIT least(%(limit)s, b.top - w.n + b.share)
    ) c
),
picked AS (
    -- Candidates in fair order, each locked by its primary key (a lateral lookup, so the plan
    -- stays O(picked) even when the statistics have not seen the burst yet). `status || ''`
    -- keeps the status out of the index lookup: matched as an index column, the planner
    -- rates status_idx (tenant_id, status, ...) as good as the primary key, and that index
    -- reads every queued entry of the tenant, dead ones included, to find one id (a herd's
    -- claim grew from 13 to 160 ms as it drained). Every lookup of a run by id that checks
    -- its status is written so.
    SELECT r.tenant_id, r.id
    FROM (SELECT * FROM candidates
          ORDER BY level, available_at, hashtext(tenant_id || %(salt)s), id) c
    CROSS JOIN LATERAL (
        SELECT q.tenant_id, q.id FROM extension_schedule_run q
        WHERE q.tenant_id = c.tenant_id AND q.id = c.id AND q.status || '' = 'queued'
        FOR UPDATE SKIP LOCKED
    ) r
    LIMIT %(limit)s
)
UPDATE extension_schedule_run r
SET status = 'running', lease_owner = %(owner)s,
    lease_expires_at = %(now)s + make_interval(secs => %(lease_seconds)s),
    started_at = coalesce(r.started_at, %(now)s), attempts = r.attempts + 1
FROM picked p
WHERE r.tenant_id = p.tenant_id AND r.id = p.id AND r.status || '' = 'queued'
-- Only what an attempt needs (ClaimedRun): every column read costs the worker per run.
RETURNING r.tenant_id, r.id, r.schedule_id, r.trigger, r.scheduled_for, r.attempts,
          r.started_at,
          (SELECT w.tenant_id FROM tenants w WHERE w.tenant_id IS NOT NULL
           ORDER BY w.depth DESC LIMIT 1) AS scan_end;

-- name: runs_next_available
-- [cross-tenant] When the next queued run that is not due yet becomes due (jittered fires,
-- retries), so an idle executor wakes for it; a scan of the queued-runs index only.
SELECT min(available_at) AS at FROM extension_schedule_run
WHERE status = 'queued' AND available_at > %(now)s;

-- name: run_requeue
-- A retryable failure with attempts left: back to the queue at its retry time.
UPDATE extension_schedule_run
SET status = 'queued', available_at = %(available_at)s, error = %(error)s,
    http_status = %(http_status)s, lease_owner = NULL, lease_expires_at = NULL
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status || '' = 'running'
  AND lease_owner = %(owner)s;

-- name: runs_expired_leases
-- [cross-tenant] runs whose worker died: their lease lapsed while running; with the attempts
-- their schedule allows (its max_attempts, else the service default).
SELECT r.tenant_id, r.id, r.attempts,
       coalesce((SELECT s.max_attempts FROM tenant_extension_schedule s
                 WHERE s.tenant_id = r.tenant_id AND s.id = r.schedule_id),
                %(default_max_attempts)s) AS max_attempts
FROM extension_schedule_run r
WHERE r.status = 'running' AND r.lease_expires_at < %(now)s
ORDER BY r.lease_expires_at
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED;

-- name: run_release_lease
-- Drain: hands a leased run back to the queue (another worker takes it).
UPDATE extension_schedule_run
SET status = 'queued', available_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL,
    error = %(error)s
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status || '' = 'running';

-- name: run_fail_lost
-- A run whose last allowed attempt lost its worker fails once (not re-sent).
UPDATE extension_schedule_run
SET status = 'failed', finished_at = %(now)s, error = %(error)s, lease_owner = NULL,
    lease_expires_at = NULL,
    duration_ms = (extract(epoch FROM (%(now)s - started_at)) * 1000)::int
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status || '' = 'running'
RETURNING *;

-- name: runs_handback
-- On graceful stop, a worker hands its claimed runs back to the queue.
UPDATE extension_schedule_run
SET status = 'queued', available_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL,
    attempts = greatest(attempts - 1, 0)
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status || '' = 'running'
  AND lease_owner = %(owner)s;

-- ================================================================ schedule run bookkeeping
-- name: schedule_lock_acquire
-- No overlap: take the schedule's run lock unless another live run holds it. The lock lapses
-- by itself at running_until, so a dead worker cannot block a schedule forever.
UPDATE tenant_extension_schedule
SET running_run_id = %(run_id)s, running_until = %(until)s
WHERE tenant_id = %(tenant_id)s AND id = %(schedule_id)s
  AND (running_run_id IS NULL OR running_run_id = %(run_id)s OR running_until < %(now)s)
RETURNING id;

-- name: schedule_lock_release
-- Releases a schedule's overlap lock if this run holds it.
UPDATE tenant_extension_schedule SET running_run_id = NULL, running_until = NULL
WHERE tenant_id = %(tenant_id)s AND id = %(schedule_id)s AND running_run_id = %(run_id)s;

-- name: schedule_record_outcome
-- A run's bookkeeping on its schedule (last run, failures in a row).
UPDATE tenant_extension_schedule SET
    last_run_at = %(at)s,
    last_run_status = %(status)s,
    last_error = %(error)s,
    last_success_at = CASE WHEN %(status)s = 'succeeded' THEN %(at)s ELSE last_success_at END,
    consecutive_failures = CASE
        WHEN %(status)s = 'succeeded' THEN 0
        WHEN %(status)s IN ('failed', 'timed_out') THEN consecutive_failures + 1
        ELSE consecutive_failures END
WHERE tenant_id = %(tenant_id)s AND id = %(schedule_id)s
RETURNING *;

-- name: schedule_auto_disable
-- The system disables a schedule (endpoint gone, failures, invalid); audited by the caller.
UPDATE tenant_extension_schedule
SET enabled = false, disabled_reason = %(reason)s, revision = revision + 1, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(schedule_id)s AND enabled
RETURNING *;

-- ================================================================ scheduler (postgres backend)
-- name: handles_claim_due
-- [cross-tenant] Due handles, oldest first; SKIP LOCKED so several schedulers split the work
-- and none fires a handle another is firing. Uses job_handle_due_idx: O(due), not O(handles).
SELECT tenant_id, schedule_id, install_id, cron, timezone, next_fire_at, last_fire_at,
       dst_gap, dst_repeat, ends_at, jitter_seconds
FROM job_handle
WHERE NOT paused AND next_fire_at <= %(now)s
ORDER BY next_fire_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: handles_claim_due_fair
-- [cross-tenant] Due handles during a herd (the previous tick was full): interleaved across
-- tenants, so a small tenant's fires are written in the first ticks instead of after every
-- bigger tenant's (handles_claim_due takes them in index order, i.e. tenant by tenant). A loose
-- index scan lists the tenants with an unpaused handle (O(tenants), job_handle_tenant_due_idx)
-- and each one's earliest fire; each tenant with one due offers its earliest `2 * share`
-- (share = limit / due tenants); the tick takes them by (next_fire_at, rank within the tenant,
-- tenant order shuffled by `salt`), each locked by its primary key, SKIP LOCKED, so several
-- schedulers split the herd. The due tests are written so that only the tenant index (a row
-- comparison on its two columns) or the primary key (`next_fire_at + 0`, a filter) can serve
-- them, never job_handle_due_idx: statistics taken before the herd came due say nothing is due,
-- and a scan of that index per tenant (or per handle) is O(herd) each; and the tenant index
-- scan stays bounded by `now`, O(due), not O(the tenant's handles).
WITH RECURSIVE tenants(tenant_id) AS (
    (SELECT tenant_id FROM job_handle WHERE NOT paused ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT h.tenant_id FROM job_handle h
            WHERE NOT h.paused AND h.tenant_id > t.tenant_id
            ORDER BY h.tenant_id LIMIT 1)
    FROM tenants t WHERE t.tenant_id IS NOT NULL
),
due_tenants AS (
    SELECT t.tenant_id FROM tenants t
    WHERE t.tenant_id IS NOT NULL
      AND (SELECT h.next_fire_at FROM job_handle h
           WHERE h.tenant_id = t.tenant_id AND NOT h.paused
             AND (h.tenant_id, h.next_fire_at) <= (t.tenant_id, %(now)s)
           ORDER BY h.tenant_id, h.next_fire_at LIMIT 1) IS NOT NULL
),
bounds AS (
    SELECT ceil(%(limit)s::numeric / greatest(count(*), 1))::int AS share FROM due_tenants
),
candidates AS (
    SELECT c.tenant_id, c.schedule_id, c.next_fire_at, c.rank
    FROM due_tenants d
    CROSS JOIN bounds b
    CROSS JOIN LATERAL (
        -- Numbered after the LIMIT: a window over the scan would read every peer (every
        -- handle due at the same instant) before the LIMIT could stop it.
        SELECT e.*, row_number() OVER (ORDER BY e.next_fire_at) AS rank
        FROM (SELECT h.tenant_id, h.schedule_id, h.next_fire_at
              FROM job_handle h
              WHERE h.tenant_id = d.tenant_id AND NOT h.paused
                AND (h.tenant_id, h.next_fire_at) <= (d.tenant_id, %(now)s)
              ORDER BY h.tenant_id, h.next_fire_at
              LIMIT 2 * b.share) e
    ) c
)
SELECT h.tenant_id, h.schedule_id, h.install_id, h.cron, h.timezone, h.next_fire_at,
       h.last_fire_at, h.dst_gap, h.dst_repeat, h.ends_at, h.jitter_seconds
FROM (SELECT * FROM candidates
      ORDER BY next_fire_at, rank, hashtext(tenant_id || %(salt)s)) c
CROSS JOIN LATERAL (
    SELECT * FROM job_handle h
    WHERE h.tenant_id = c.tenant_id AND h.schedule_id = c.schedule_id
      AND NOT h.paused AND h.next_fire_at + interval '0 s' <= %(now)s
    FOR UPDATE SKIP LOCKED
) h
LIMIT %(limit)s;

-- name: handles_advance
-- Scheduler: moves fired handles to their next fire, one statement per tick.
UPDATE job_handle h SET next_fire_at = v.next_fire_at, last_fire_at = v.last_fire_at
FROM unnest(%(tenant_ids)b::text[], %(schedule_ids)b::uuid[], %(next_fire_ats)b::timestamptz[],
            %(last_fire_ats)b::timestamptz[]) AS v(tenant_id, schedule_id, next_fire_at, last_fire_at)
WHERE h.tenant_id = v.tenant_id AND h.schedule_id = v.schedule_id;

-- name: handles_next_due
-- [cross-tenant] when the scheduler should wake next.
SELECT min(next_fire_at) AS at FROM job_handle WHERE NOT paused;

-- ================================================================ rate limits
-- name: rate_limit_hits
-- Run-now limits: counts a hit in the current minute for a schedule and for its tenant, shared
-- by every API process. The rows lock in this order (schedule, then tenant) in every caller.
INSERT INTO rate_limit_counter (tenant_id, bucket, window_start, hits)
VALUES (%(tenant_id)s, %(schedule_bucket)s, %(window_start)s, 1),
       (%(tenant_id)s, 'tenant', %(window_start)s, 1)
ON CONFLICT (tenant_id, bucket, window_start) DO UPDATE SET hits = rate_limit_counter.hits + 1
RETURNING bucket, hits;

-- name: rate_limit_prune
-- Retention: a tenant's run-now windows that ended before the cutoff can no longer matter
-- (one-minute windows; without this the table grows with every minute a run-now was made).
WITH gone AS (
    DELETE FROM rate_limit_counter
    WHERE tenant_id = %(tenant_id)s AND window_start < %(cutoff)s
    RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- ================================================================ lifecycle
-- name: schedule_remap
-- Update: points a schedule at the new version's endpoint, or disables it.
UPDATE tenant_extension_schedule SET
    endpoint_id = %(endpoint_id)s, endpoint_method = %(endpoint_method)s,
    endpoint_path = %(endpoint_path)s, enabled = %(enabled)s,
    disabled_reason = %(disabled_reason)s, revision = revision + 1, updated_at = now()
WHERE tenant_id = %(tenant_id)s AND id = %(id)s
RETURNING *;

-- name: installs_of_tenant
-- The kill switch: every install of the tenant, to pause or resume its handles.
SELECT id, extension_id FROM tenant_extension_install WHERE tenant_id = %(tenant_id)s;

-- name: admin_schedules
-- [cross-tenant] the platform admin's listing.
SELECT s.*, i.enabled AS install_enabled, t.kill_switch
FROM tenant_extension_schedule s
LEFT JOIN tenant_extension_install i ON i.tenant_id = s.tenant_id AND i.id = s.install_id
LEFT JOIN tenant t ON t.tenant_id = s.tenant_id
WHERE (%(tenant_id)s::text IS NULL OR s.tenant_id = %(tenant_id)s)
  AND (%(extension_id)s::uuid IS NULL OR s.extension_id = %(extension_id)s)
  AND (%(install_id)s::uuid IS NULL OR s.install_id = %(install_id)s)
ORDER BY s.tenant_id, s.created_at, s.id
LIMIT %(limit)s;

-- name: reconcile_schedules
-- [cross-tenant] every schedule with whether its install and endpoint still exist.
SELECT s.tenant_id, s.id, s.install_id, s.extension_id, s.enabled, s.cron, s.timezone,
       s.endpoint_id, i.id IS NOT NULL AS install_exists,
       coalesce(i.enabled, false) AS install_enabled,
       coalesce(t.kill_switch, false) AS kill_switch,
       (e.id IS NOT NULL AND e.version_id = i.version_id) AS endpoint_current
FROM tenant_extension_schedule s
LEFT JOIN tenant_extension_install i ON i.tenant_id = s.tenant_id AND i.id = s.install_id
LEFT JOIN tenant t ON t.tenant_id = s.tenant_id
LEFT JOIN extension_api_endpoint e ON e.id = s.endpoint_id
ORDER BY s.tenant_id, s.id;

-- name: schedule_state_counts
-- [cross-tenant] for the extsched_schedules{state} gauge.
SELECT CASE WHEN NOT s.enabled THEN 'disabled'
            WHEN NOT coalesce(i.enabled, false) OR coalesce(t.kill_switch, false) THEN 'paused'
            ELSE 'enabled' END AS state,
       count(*) AS n
FROM tenant_extension_schedule s
LEFT JOIN tenant_extension_install i ON i.tenant_id = s.tenant_id AND i.id = s.install_id
LEFT JOIN tenant t ON t.tenant_id = s.tenant_id
GROUP BY 1;

-- ===== ui
-- Read models for the web UI (src/extsched/web) beyond what the API's queries give.

-- name: ui_install_summaries
-- Per install of a tenant: its number of schedules and its latest failed run.
SELECT i.extension_id,
       (SELECT count(*) FROM tenant_extension_schedule s
        WHERE s.tenant_id = i.tenant_id AND s.install_id = i.id) AS schedules,
       f.at AS last_failure_at, f.status AS last_failure_status, f.error AS last_failure_error,
       f.schedule_id AS last_failure_schedule_id
FROM tenant_extension_install i
LEFT JOIN LATERAL (
    SELECT coalesce(r.finished_at, r.scheduled_for) AS at, r.status, r.error, r.schedule_id
    FROM extension_schedule_run r
    WHERE r.tenant_id = i.tenant_id AND r.install_id = i.id
      AND r.status IN ('failed', 'timed_out')
    ORDER BY r.scheduled_for DESC, r.id DESC
    LIMIT 1
) f ON true
WHERE i.tenant_id = %(tenant_id)s;

-- name: dashboard_schedules
-- The dashboard: every schedule of a tenant, across its installs, with its extension's name and
-- whether its install is enabled (one statement, whatever the number of extensions).
SELECT s.*, e.name AS extension_name, i.enabled AS install_enabled
FROM tenant_extension_schedule s
JOIN tenant_extension_install i ON i.tenant_id = s.tenant_id AND i.id = s.install_id
JOIN extension e ON e.id = i.extension_id
WHERE s.tenant_id = %(tenant_id)s
ORDER BY e.name, s.created_at, s.id;

-- name: dashboard_recent_runs
-- The dashboard's charts: each schedule's last runs, newest first, in one statement (one
-- range of the history index per schedule; colocated by tenant_id for Citus).
SELECT s.id AS schedule_id, r.id, r.status, r.trigger, r.scheduled_for, r.duration_ms
FROM tenant_extension_schedule s
CROSS JOIN LATERAL (
    SELECT x.id, x.status, x.trigger, x.scheduled_for, x.duration_ms
    FROM extension_schedule_run x
    WHERE x.tenant_id = s.tenant_id AND x.schedule_id = s.id
    ORDER BY x.scheduled_for DESC, x.id DESC
    LIMIT %(per_schedule)s
) r
WHERE s.tenant_id = %(tenant_id)s;

-- name: ui_active_run_schedules
-- Schedules of an install with a queued or running run (their "run now" waits).
SELECT DISTINCT schedule_id FROM extension_schedule_run
WHERE tenant_id = %(tenant_id)s AND install_id = %(install_id)s
  AND status IN ('queued', 'running');

-- name: ui_extension_versions
-- The UI's version picker: an extension's versions, oldest first.
SELECT id AS version_id, version, created_at FROM extension_version
WHERE extension_id = %(extension_id)s
ORDER BY created_at, id;

-- ================================================================ invocation (hot path)
-- name: runs_prepare
-- [cross-tenant] Everything a batch of attempts needs, and their overlap locks, in one round
-- trip (one row per run whose schedule still exists; the caller sends each schedule at most
-- once per batch). `tenants` lists the batch's tenants, so Citus can prune to their shards (the
-- Temporal backend sends one tenant per batch: a single-shard statement). Only when every
-- check of SPEC §9 passes: `skip` and `buffer_one` take the schedule's lock (until the
-- schedule's timeout + grace, and the run's lease follows a longer timeout), `buffer_one`
-- marks a run that finds the lock held as the one buffered run, `allow` takes no lock. The
-- caller reads which check failed from the row.
WITH v AS (
    SELECT * FROM unnest(%(tenant_ids)b::text[], %(schedule_ids)b::uuid[], %(run_ids)b::uuid[],
                         %(triggers)b::text[]) AS v(tenant_id, schedule_id, run_id, trigger)
),
s AS (
    SELECT v.run_id AS p_run_id, v.trigger AS p_trigger,
           s.*, i.id AS i_id, coalesce(i.enabled, false) AS install_enabled,
           i.version_id AS i_version_id, i.config AS i_config,
           i.secrets_encrypted AS i_secrets_encrypted, i.providers AS i_providers,
           v2.content_hash AS v_content_hash, v2.version AS v_version, e.name AS e_name,
           coalesce(t.kill_switch, false) AS kill_switch,
           ep.id AS ep_id, ep.version_id AS ep_version_id,
           r.payload_override AS r_payload_override,
           %(now)s::timestamptz + make_interval(secs => %(grace_seconds)s
               + coalesce(s.timeout_ms, %(default_timeout_ms)s) / 1000.0) AS p_until,
           (i.id IS NOT NULL AND coalesce(i.enabled, false) AND NOT coalesce(t.kill_switch, false)
            AND (v.trigger <> 'schedule' OR s.enabled)
            AND ep.id IS NOT NULL AND ep.version_id = i.version_id) AS p_checks
    FROM v
    -- Each schedule by its primary key (a lateral lookup the planner keeps): joined as a set,
    -- a herd's freshly written rows without statistics made it scan every schedule of the
    -- batch's tenants (26k rows for 32 runs).
    CROSS JOIN LATERAL (
        SELECT * FROM tenant_extension_schedule s0
        WHERE s0.tenant_id = v.tenant_id AND s0.id = v.schedule_id
          AND s0.tenant_id = ANY(%(tenants)b::text[])
        LIMIT 1
    ) s
    LEFT JOIN extension_schedule_run r ON r.tenant_id = v.tenant_id AND r.id = v.run_id
    LEFT JOIN tenant t ON t.tenant_id = s.tenant_id
    LEFT JOIN tenant_extension_install i
        ON i.tenant_id = s.tenant_id AND i.extension_id = s.extension_id
    LEFT JOIN extension_version v2 ON v2.id = i.version_id
    LEFT JOIN extension e ON e.id = i.extension_id
    LEFT JOIN extension_api_endpoint ep ON ep.id = s.endpoint_id
),
lock AS (
    UPDATE tenant_extension_schedule ts
    SET running_run_id = s.p_run_id, running_until = s.p_until,
        buffered_run_id = CASE WHEN ts.buffered_run_id = s.p_run_id THEN NULL
                               ELSE ts.buffered_run_id END
    FROM s
    WHERE ts.tenant_id = ANY(%(tenants)b::text[]) AND ts.tenant_id = s.tenant_id AND ts.id = s.id
      AND s.p_checks AND coalesce(s.overlap, 'skip') <> 'allow'
      AND (ts.running_run_id IS NULL OR ts.running_run_id = s.p_run_id
           OR ts.running_until < %(now)s)
    RETURNING ts.running_run_id
),
buffer AS (
    -- The lock is held by another live run: this run waits as the schedule's one buffered run,
    -- unless another run already waits (a buffered run that is gone or finished frees the seat).
    UPDATE tenant_extension_schedule ts
    SET buffered_run_id = s.p_run_id
    FROM s
    WHERE ts.tenant_id = ANY(%(tenants)b::text[]) AND ts.tenant_id = s.tenant_id AND ts.id = s.id
      AND s.p_checks AND s.overlap = 'buffer_one'
      AND ts.running_run_id IS NOT NULL AND ts.running_run_id <> s.p_run_id
      AND ts.running_until >= %(now)s
      AND (ts.buffered_run_id IS NULL OR ts.buffered_run_id = s.p_run_id
           OR NOT EXISTS (SELECT 1 FROM extension_schedule_run b
                          WHERE b.tenant_id = ts.tenant_id AND b.id = ts.buffered_run_id
                            AND b.status || '' IN ('queued', 'running')))
    RETURNING ts.buffered_run_id, ts.running_until
),
lease AS (
    -- A schedule's longer timeout stretches the run's lease (claimed with the default one).
    -- Each run by its primary key only, as in runs_complete.
    UPDATE extension_schedule_run x SET lease_expires_at = s.p_until
    FROM s
    WHERE x.tenant_id = s.tenant_id
      AND x.id = s.p_run_id AND x.status || '' = 'running' AND s.p_checks
      AND s.timeout_ms IS NOT NULL AND x.lease_expires_at < s.p_until
    RETURNING x.id
)
-- Only what PreparedRun reads: every column read costs the worker per run.
SELECT s.p_run_id, s.tenant_id, s.id, s.extension_id, s.enabled, s.payload, s.endpoint_method,
       s.endpoint_path, s.overlap, s.max_attempts, s.timeout_ms, s.i_id, s.install_enabled,
       s.i_version_id, s.i_config, s.i_secrets_encrypted, s.i_providers, s.v_content_hash,
       s.v_version, s.e_name, s.kill_switch, s.ep_id, s.ep_version_id, s.r_payload_override,
       (s.p_checks AND s.overlap = 'allow') OR s.p_run_id IN (SELECT running_run_id FROM lock)
           AS locked,
       (SELECT running_until FROM buffer WHERE buffer.buffered_run_id = s.p_run_id)
           AS buffered_until,
       (SELECT count(*) FROM lease) AS leases_stretched
FROM s;

-- name: run_defer
-- A buffered run hands its claim back until the running run ends: queued again at
-- `available_at`, its attempt not counted and its start not yet recorded.
UPDATE extension_schedule_run
SET status = 'queued', available_at = %(available_at)s, lease_owner = NULL,
    lease_expires_at = NULL, attempts = greatest(attempts - 1, 0), started_at = NULL
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status || '' = 'running'
  AND lease_owner = %(owner)s;

-- name: runs_complete
-- [cross-tenant] Finish a batch of runs (each only by its lease holder), release their
-- schedules' locks, do the bookkeeping of SPEC §9 and queue the notifications the outcomes
-- cause (run_failed, schedule_recovered; only for tenants subscribed to them), in one
-- statement, so an event is queued exactly when its outcome commits. The caller sends each
-- schedule at most once per batch (so a folded notification row is touched once); `tenants`
-- as in runs_prepare. A run with no row lost its lease: nothing was changed.
WITH v AS (
    SELECT * FROM unnest(%(tenant_ids)b::text[], %(run_ids)b::uuid[], %(owners)b::text[],
                         %(statuses)b::text[], %(skip_reasons)b::text[],
                         %(finished_ats)b::timestamptz[], %(duration_ms)b::int[],
                         %(http_statuses)b::int[], %(errors)b::text[],
                         %(response_previews)b::text[], %(last_errors)b::text[],
                         %(notify_ids)b::uuid[])
        AS v(tenant_id, run_id, owner, status, skip_reason, finished_at, duration_ms,
             http_status, error, response_preview, last_error, notify_id)
),
r AS (
    UPDATE extension_schedule_run x
    SET status = v.status, skip_reason = v.skip_reason, finished_at = v.finished_at,
        duration_ms = v.duration_ms, http_status = v.http_status, error = v.error,
        response_preview = v.response_preview, lease_owner = NULL, lease_expires_at = NULL
    -- Each run by its primary key. No `tenant_id = ANY(tenants)` here: given that clause, a
    -- planner whose statistics have not seen a herd read every row of the batch's tenants
    -- through it (57,000 index entries for 64 runs, 23 -> 11 ms a batch). On Citus the run
    -- update is therefore not pruned to one shard (docs/data-model.md).
    FROM v
    WHERE x.tenant_id = v.tenant_id AND x.id = v.run_id AND x.status || '' = 'running'
      AND x.lease_owner = v.owner
    -- The outcome comes along from v, so the schedule update below joins r alone: joining v
    -- again was planned as a nested loop over two CTE scans (the planner guesses 1 and 10
    -- rows), comparing every pair: 2,352 pairs and ~1.7 of 7.4 ms for a batch of 49.
    RETURNING x.tenant_id, x.id, x.schedule_id, x.scheduled_for, v.status, v.finished_at,
              v.http_status, v.error, v.last_error, v.notify_id
),
-- The schedules as they were before this statement (every CTE sees the same snapshot).
before AS (
    SELECT s.tenant_id, s.id, s.consecutive_failures
    FROM tenant_extension_schedule s JOIN r ON s.tenant_id = r.tenant_id AND s.id = r.schedule_id
    WHERE s.tenant_id = ANY(%(tenants)b::text[])
),
u AS (
    UPDATE tenant_extension_schedule s SET
        running_run_id = CASE WHEN s.running_run_id = r.id THEN NULL ELSE s.running_run_id END,
        running_until = CASE WHEN s.running_run_id = r.id THEN NULL ELSE s.running_until END,
        last_run_at = r.finished_at,
        last_run_status = r.status,
        last_error = r.last_error,
        last_success_at = CASE WHEN r.status = 'succeeded' THEN r.finished_at
                               ELSE s.last_success_at END,
        consecutive_failures = CASE
            WHEN r.status = 'succeeded' THEN 0
            WHEN r.status IN ('failed', 'timed_out') THEN s.consecutive_failures + 1
            ELSE s.consecutive_failures END
    FROM r
    WHERE s.tenant_id = ANY(%(tenants)b::text[]) AND s.tenant_id = r.tenant_id
      AND s.id = r.schedule_id
    RETURNING r.id AS run_id, s.tenant_id, s.id, s.install_id, s.extension_id, s.enabled,
              s.consecutive_failures, s.name, r.status, r.finished_at, r.http_status, r.error,
              r.notify_id, r.scheduled_for
),
events AS (
    SELECT u.*, CASE
            WHEN u.status IN ('failed', 'timed_out') THEN 'run_failed'
            WHEN u.status = 'succeeded' AND b.consecutive_failures > 0 THEN 'schedule_recovered'
        END AS type
    FROM u JOIN before b ON b.tenant_id = u.tenant_id AND b.id = u.id
),
queued AS (
    INSERT INTO notification_delivery AS d
        (tenant_id, id, type, at, payload, coalesce_key, next_attempt_at, created_at)
    SELECT e.tenant_id, e.notify_id, e.type, e.finished_at,
           jsonb_build_object(
               'extension_id', e.extension_id,
               'schedule', jsonb_build_object('id', e.id, 'name', e.name),
               'run', jsonb_build_object('id', e.run_id, 'status', e.status,
                                         'scheduled_for', e.scheduled_for,
                                         'http_status', e.http_status, 'error', e.error)),
           CASE WHEN e.type = 'run_failed' THEN 'run_failed:' || e.id::text END,
           e.finished_at, e.finished_at
    FROM events e JOIN tenant_notification t ON t.tenant_id = e.tenant_id
    WHERE t.tenant_id = ANY(%(tenants)b::text[]) AND e.type IS NOT NULL
      AND t.enabled AND t.webhook_url IS NOT NULL AND e.type = ANY(t.events)
    ON CONFLICT (tenant_id, coalesce_key)
        WHERE status = 'pending' AND attempts = 0 AND lease_owner IS NULL
              AND coalesce_key IS NOT NULL
    DO UPDATE SET count = d.count + 1, at = EXCLUDED.at, payload = EXCLUDED.payload
    RETURNING d.id
)
SELECT run_id, tenant_id, id, install_id, extension_id, enabled, consecutive_failures,
       (SELECT count(*) FROM queued) AS notifications_queued
FROM u;

-- ===== temporal backend
-- The Temporal activity records the fire its workflow delivers and claims its run by id.

-- name: temporal_fire_insert
-- A fire is recorded once per (schedule, scheduled_for), however often Temporal delivers it.
-- FOR KEY SHARE waits for a concurrent delete of the schedule, so no run is recorded for a
-- schedule that is gone (nothing may point at a missing row).
INSERT INTO extension_schedule_run
    (tenant_id, id, schedule_id, install_id, trigger, scheduled_for, status, skip_reason,
     skipped_count, available_at, finished_at)
SELECT s.tenant_id, %(id)s, s.id, s.install_id, 'schedule', %(scheduled_for)s, %(status)s,
       %(skip_reason)s, %(skipped_count)s, %(available_at)s, %(finished_at)s
FROM tenant_extension_schedule s
WHERE s.tenant_id = %(tenant_id)s AND s.id = %(schedule_id)s
  -- A fire outside the schedule's window or pause is neither made nor recorded (SPEC §8).
  AND (s.starts_at IS NULL OR s.starts_at <= %(scheduled_for)s)
  AND (s.paused_until IS NULL OR s.paused_until <= %(scheduled_for)s)
  AND (s.ends_at IS NULL OR %(scheduled_for)s < s.ends_at)
FOR KEY SHARE OF s
ON CONFLICT (tenant_id, schedule_id, scheduled_for) WHERE trigger = 'schedule' DO NOTHING
RETURNING *;

-- name: temporal_fires_claim
-- The hot path of scheduled fires on Temporal, for a batch of one tenant's deliveries (each
-- schedule at most once per batch; `tenants` as in runs_prepare): record each fire once per
-- (schedule, scheduled_for), as temporal_fire_insert, and claim the ones due now for their
-- first attempt in the same statement (status running, leased to `owner`, as
-- temporal_run_claim would), so a fresh fire costs one round trip instead of three. A jittered
-- fire is recorded queued until its offset. A fire recorded before (a repeated delivery), of a
-- schedule that is gone, or outside its window or pause returns no row: the activity then
-- takes the one-fire path (run_fire_get, temporal_fire_insert, temporal_run_claim).
INSERT INTO extension_schedule_run
    (tenant_id, id, schedule_id, install_id, trigger, scheduled_for, status, available_at,
     started_at, attempts, lease_owner, lease_expires_at)
SELECT s.tenant_id, v.id, s.id, s.install_id, 'schedule', v.scheduled_for,
       CASE WHEN v.available_at <= %(now)s THEN 'running' ELSE 'queued' END,
       v.available_at,
       CASE WHEN v.available_at <= %(now)s THEN %(now)s::timestamptz END,
       CASE WHEN v.available_at <= %(now)s THEN 1 ELSE 0 END,
       CASE WHEN v.available_at <= %(now)s THEN %(owner)s END,
       CASE WHEN v.available_at <= %(now)s
            THEN %(now)s::timestamptz + make_interval(secs => %(lease_seconds)s) END
FROM unnest(%(tenant_ids)s::text[], %(ids)s::uuid[], %(schedule_ids)s::uuid[],
            %(scheduled_fors)s::timestamptz[], %(available_ats)s::timestamptz[])
    AS v(tenant_id, id, schedule_id, scheduled_for, available_at)
JOIN tenant_extension_schedule s ON s.tenant_id = v.tenant_id AND s.id = v.schedule_id
WHERE s.tenant_id = ANY(%(tenants)s::text[])
  -- A fire outside the schedule's window or pause is neither made nor recorded (SPEC §8).
  AND (s.starts_at IS NULL OR s.starts_at <= v.scheduled_for)
  AND (s.paused_until IS NULL OR s.paused_until <= v.scheduled_for)
  AND (s.ends_at IS NULL OR v.scheduled_for < s.ends_at)
FOR KEY SHARE OF s
ON CONFLICT (tenant_id, schedule_id, scheduled_for) WHERE trigger = 'schedule' DO NOTHING
RETURNING *;

-- name: temporal_run_claim
-- Claim one run for an attempt. Matches status = 'queued' (and, for a repeated delivery, only
-- once it is due: the first delivery may be sleeping until its retry time), or 'running' with
-- a lapsed lease and attempts left under the schedule's max_attempts (else the service
-- default), as the postgres reaper counts them (the worker died; Temporal retried the
-- activity), so exactly one attempt holds the lease at a time.
UPDATE extension_schedule_run r
SET status = 'running', lease_owner = %(owner)s,
    lease_expires_at = %(now)s + make_interval(secs => %(lease_seconds)s),
    started_at = coalesce(r.started_at, %(now)s), attempts = r.attempts + 1
WHERE r.tenant_id = %(tenant_id)s AND r.id = %(id)s
  AND ((r.status = 'queued' AND (%(due)s::timestamptz IS NULL OR r.available_at <= %(due)s))
       OR (r.status = 'running' AND r.lease_expires_at < %(now)s
           AND r.attempts < coalesce((SELECT s.max_attempts FROM tenant_extension_schedule s
                                      WHERE s.tenant_id = r.tenant_id AND s.id = r.schedule_id),
                                     %(default_max_attempts)s)))
RETURNING r.*;

-- name: schedules_mark_overdue
-- Flags schedules newly overdue (returns them, to audit once) and clears recovered ones.
WITH flagged AS (
    UPDATE tenant_extension_schedule s SET overdue_since = %(now)s
    FROM unnest(%(tenant_ids)s::text[], %(schedule_ids)s::uuid[]) AS o(tenant_id, id)
    WHERE s.tenant_id = o.tenant_id AND s.id = o.id AND s.overdue_since IS NULL
    RETURNING s.tenant_id, s.id, s.extension_id, s.name
), cleared AS (
    UPDATE tenant_extension_schedule s SET overdue_since = NULL
    WHERE s.overdue_since IS NOT NULL
      AND (s.tenant_id, s.id) NOT IN (
          SELECT o.tenant_id, o.id
          FROM unnest(%(tenant_ids)s::text[], %(schedule_ids)s::uuid[]) AS o(tenant_id, id))
    RETURNING s.id
)
SELECT tenant_id, id, extension_id, name FROM flagged;

-- ================================================================ maintenance and retention
-- name: maintenance_try_lock
-- One maintenance pass of a kind at a time across all workers (session-level advisory lock,
-- held on a dedicated connection for the pass; released by maintenance_unlock or on close).
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: maintenance_unlock
-- Ends a maintenance pass: frees its advisory lock for the next worker.
SELECT pg_advisory_unlock(%(key)s) AS unlocked;

-- name: retention_tenants
-- [cross-tenant] the tenants whose runs and audit entries a retention pass visits.
SELECT tenant_id FROM tenant ORDER BY tenant_id;

-- name: runs_prune
-- Deletes one batch of one tenant's finished runs created before the cutoff (ids are UUIDv7,
-- so the primary key is the age index), oldest first from the keyset cursor ``after``; a run
-- is kept while it is its schedule's newest, in the listings' order (so last_run_* stays
-- explainable; one range of the history index).
-- Returns how many went and the last id, where the next batch starts.
WITH doomed AS (
    SELECT r.id FROM extension_schedule_run r
    WHERE r.tenant_id = %(tenant_id)s AND r.id > %(after)s AND r.id < %(cutoff)s
      AND r.status IN ('succeeded', 'failed', 'timed_out', 'skipped')
      AND EXISTS (SELECT 1 FROM extension_schedule_run n
                  WHERE n.tenant_id = %(tenant_id)s AND n.schedule_id = r.schedule_id
                    AND (n.scheduled_for, n.id) > (r.scheduled_for, r.id))
    ORDER BY r.id
    LIMIT %(limit)s
), gone AS (
    DELETE FROM extension_schedule_run r USING doomed d
    WHERE r.tenant_id = %(tenant_id)s AND r.id = d.id
    RETURNING r.id
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT id FROM gone ORDER BY id DESC LIMIT 1) AS last;

-- name: audit_prune
-- Deletes one batch of one tenant's audit entries created before the cutoff (UUIDv7 ids),
-- oldest first from the keyset cursor ``after``.
WITH doomed AS (
    SELECT a.id FROM extension_audit_log a
    WHERE a.tenant_id = %(tenant_id)s AND a.id > %(after)s AND a.id < %(cutoff)s
    ORDER BY a.id
    LIMIT %(limit)s
), gone AS (
    DELETE FROM extension_audit_log a USING doomed d
    WHERE a.tenant_id = %(tenant_id)s AND a.id = d.id
    RETURNING a.id
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT id FROM gone ORDER BY id DESC LIMIT 1) AS last;

-- name: notifications_prune
-- Deletes one batch of one tenant's finished deliveries (delivered or failed) queued before the
-- cutoff (UUIDv7 ids), oldest first from the keyset cursor ``after``; pending ones stay.
WITH doomed AS (
    SELECT n.id FROM notification_delivery n
    WHERE n.tenant_id = %(tenant_id)s AND n.id > %(after)s AND n.id < %(cutoff)s
      AND n.status <> 'pending'
    ORDER BY n.id
    LIMIT %(limit)s
), gone AS (
    DELETE FROM notification_delivery n USING doomed d
    WHERE n.tenant_id = %(tenant_id)s AND n.id = d.id
    RETURNING n.id
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT id FROM gone ORDER BY id DESC LIMIT 1) AS last;

-- ================================================================ notifications
-- name: notification_settings_get
-- A tenant's notification settings (no row: never configured).
SELECT tenant_id, webhook_url, events, enabled, secret_encrypted, secret_hint, updated_at
FROM tenant_notification WHERE tenant_id = %(tenant_id)s;

-- name: notification_settings_lock
-- The settings row locked for a change (None: never configured).
SELECT tenant_id, webhook_url, events, enabled, secret_encrypted, secret_hint
FROM tenant_notification WHERE tenant_id = %(tenant_id)s FOR UPDATE;

-- name: notification_settings_put
-- Creates or changes a tenant's settings; a secret is stored only when none exists yet.
INSERT INTO tenant_notification
    (tenant_id, webhook_url, events, enabled, secret_encrypted, secret_hint)
VALUES (%(tenant_id)s, %(webhook_url)s, %(events)s, %(enabled)s, %(secret_encrypted)s,
        %(secret_hint)s)
ON CONFLICT (tenant_id) DO UPDATE SET
    webhook_url = EXCLUDED.webhook_url, events = EXCLUDED.events, enabled = EXCLUDED.enabled,
    secret_encrypted = coalesce(tenant_notification.secret_encrypted, EXCLUDED.secret_encrypted),
    secret_hint = coalesce(tenant_notification.secret_hint, EXCLUDED.secret_hint),
    updated_at = now()
RETURNING tenant_id, webhook_url, events, enabled, secret_encrypted, secret_hint, updated_at;

-- name: notification_secret_init
-- Gives a tenant its signing secret if it has none (a row is created, notifications off);
-- returns the stored secret, the existing one when another request stored it first.
INSERT INTO tenant_notification (tenant_id, secret_encrypted, secret_hint)
VALUES (%(tenant_id)s, %(secret_encrypted)s, %(secret_hint)s)
ON CONFLICT (tenant_id) DO UPDATE SET
    secret_encrypted = coalesce(tenant_notification.secret_encrypted, EXCLUDED.secret_encrypted),
    secret_hint = coalesce(tenant_notification.secret_hint, EXCLUDED.secret_hint)
RETURNING secret_encrypted;

-- name: notification_enqueue
-- Queues one event for a tenant, on the caller's transaction, if the tenant subscribed to it
-- (``force``: the test event, sent whenever a URL is set). A run_failed of a schedule whose
-- previous one still waits for its first attempt is folded into it (count + 1, latest facts).
INSERT INTO notification_delivery AS d
    (tenant_id, id, type, at, payload, coalesce_key, next_attempt_at, created_at)
SELECT t.tenant_id, %(id)s, %(type)s, %(at)s, %(payload)s, %(coalesce_key)s, %(at)s, %(at)s
FROM tenant_notification t
WHERE t.tenant_id = %(tenant_id)s AND t.webhook_url IS NOT NULL
  AND (%(force)s OR (t.enabled AND %(type)s = ANY(t.events)))
ON CONFLICT (tenant_id, coalesce_key)
    WHERE status = 'pending' AND attempts = 0 AND lease_owner IS NULL
          AND coalesce_key IS NOT NULL
DO UPDATE SET count = d.count + 1, at = EXCLUDED.at, payload = EXCLUDED.payload
RETURNING d.id, d.status;

-- name: notification_deliveries_page
-- A page of a tenant's deliveries, newest first, before the keyset cursor.
SELECT id, type, at, status, attempts, last_error, http_status, count, created_at,
       delivered_at, next_attempt_at
FROM notification_delivery
WHERE tenant_id = %(tenant_id)s
  AND (%(before_id)s::uuid IS NULL OR id < %(before_id)s::uuid)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: notify_due_tenants
-- [cross-tenant] Tenants with a delivery due now, the longest waiting first (a plain read, so
-- it runs on Citus too; each tenant is then leased with notify_lease_tenant, on its shard).
SELECT d.tenant_id FROM notification_delivery d
WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s
GROUP BY d.tenant_id
ORDER BY min(d.next_attempt_at)
LIMIT %(limit)s;

-- name: notify_lease_tenant
-- Lease one tenant's deliveries to this worker if it has room in its pace: no delivery of
-- its own in flight (lease free or lapsed) and fewer than ``per_minute`` attempts in its
-- current one-minute window. The UPDATE matches that old state, so of two workers racing for
-- a tenant exactly one gets a row back: one delivery per tenant in flight, none sent twice.
UPDATE tenant_notification t SET
    lease_owner = %(owner)s,
    lease_until = %(now)s + make_interval(secs => %(lease_seconds)s),
    window_start = CASE WHEN t.window_start IS NULL
                          OR t.window_start <= %(now)s - interval '1 minute'
                        THEN %(now)s ELSE t.window_start END,
    window_count = CASE WHEN t.window_start IS NULL
                          OR t.window_start <= %(now)s - interval '1 minute'
                        THEN 1 ELSE t.window_count + 1 END
WHERE t.tenant_id = %(tenant_id)s
  AND (t.lease_until IS NULL OR t.lease_until < %(now)s)
  AND (t.window_start IS NULL OR t.window_start <= %(now)s - interval '1 minute'
       OR t.window_count < %(per_minute)s)
RETURNING t.tenant_id, t.webhook_url, t.events, t.enabled, t.secret_encrypted;

-- name: notify_take_next
-- The leased tenant's oldest due delivery, taken out of folding (lease_owner set), so the
-- payload about to be sent no longer changes; later events queue a new row.
UPDATE notification_delivery d SET lease_owner = %(owner)s
WHERE d.tenant_id = %(tenant_id)s AND d.id = (
    SELECT x.id FROM notification_delivery x
    WHERE x.tenant_id = %(tenant_id)s AND x.status = 'pending'
      AND x.next_attempt_at <= %(now)s
    ORDER BY x.next_attempt_at, x.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING d.*;

-- name: notify_record_attempt
-- The outcome of one attempt: delivered, retried at ``next_attempt_at``, or failed for good.
UPDATE notification_delivery SET
    status = %(status)s, attempts = attempts + 1, lease_owner = NULL,
    last_attempt_at = %(now)s, last_error = %(error)s, http_status = %(http_status)s,
    next_attempt_at = coalesce(%(next_attempt_at)s, next_attempt_at),
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(now)s ELSE delivered_at END
WHERE tenant_id = %(tenant_id)s AND id = %(id)s AND status = 'pending';

-- name: notify_release_tenant
-- Ends this worker's lease on a tenant's deliveries (only its own).
UPDATE tenant_notification SET lease_owner = NULL, lease_until = NULL
WHERE tenant_id = %(tenant_id)s AND lease_owner = %(owner)s;

-- name: notify_next_due
-- [cross-tenant] When the next pending delivery is due (the delivery loop's wake-up).
SELECT min(next_attempt_at) FROM notification_delivery WHERE status = 'pending';
