-- Audit targets carry the object's name as it was when the entry was written (SPEC §9), so
-- a UI can say "schedule Nightly sync" and link it even after the object is gone.
ALTER TABLE extension_audit_log ADD COLUMN target_name text;
