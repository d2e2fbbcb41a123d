-- The install's Standard Webhooks signing secrets (SPEC §5, §6): one AES-GCM blob (the service
-- key, bound to the install) holding the current secret and, for 24 h after a rotation, the
-- previous one. NULL until first needed: installs made before this revision get theirs on the
-- first read (API or Runner), since a migration has no access to the service key.
ALTER TABLE tenant_extension_install ADD COLUMN signing_secrets_encrypted bytea;
