-- Host-platform identity (SPEC §4): tokens may expire and record their last use (written at
-- most once a minute per token), UI sessions live on the server so that signing out, revoking
-- the token or its expiry ends them, and a JWT used for browser sign-in (/ui/sso) is used once.
ALTER TABLE api_token
    ADD COLUMN expires_at    timestamptz,
    ADD COLUMN last_used_at  timestamptz;

-- Looked up by id on every UI request, before the tenant is known: a reference table, like
-- api_token (sessions are written only at sign-in and sign-out). token_id is NULL for a
-- session opened with a host-platform JWT; the principal is copied from the token or JWT.
CREATE TABLE ui_session (
    id             uuid PRIMARY KEY,
    token_id       uuid,
    tenant_id      text NOT NULL,
    user_id        text NOT NULL,
    user_timezone  text,
    permissions    text[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz
);
CREATE INDEX ui_session_expires_idx ON ui_session (expires_at);

-- The jti of every JWT that signed a browser in, kept until the JWT expires.
CREATE TABLE sso_jti (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sso_jti_expires_idx ON sso_jti (expires_at);

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_reference_table('ui_session');
        PERFORM create_reference_table('sso_jti');
    END IF;
END
$citus$;
