-- Run listings (SPEC §5) are newest first by (scheduled_for, id) within one tenant: the column
-- their since/until window bounds leads the order, so a filter plus a window plus the keyset
-- cursor ((scheduled_for, id) < cursor) is one range of one index, whatever the table's size.
-- tenant_id leads every index (Citus). Which index serves which filter, and the EXPLAIN test
-- that holds the planner to it: docs/performance.md, tests/integration/test_run_history.py.

-- No filter, a trigger of scheduled fires, or only a window.
CREATE INDEX extension_schedule_run_time_idx
    ON extension_schedule_run (tenant_id, scheduled_for, id);

-- One schedule (replaces (tenant_id, schedule_id, id DESC); retention's "newest run of its
-- schedule" check reads this one too).
CREATE INDEX extension_schedule_run_history2_idx
    ON extension_schedule_run (tenant_id, schedule_id, scheduled_for, id);
DROP INDEX extension_schedule_run_history_idx;
ALTER INDEX extension_schedule_run_history2_idx RENAME TO extension_schedule_run_history_idx;

-- One extension, by its install (replaces (tenant_id, install_id), which the install's cleanup
-- and the UI's last-failure lookup also use).
CREATE INDEX extension_schedule_run_install2_idx
    ON extension_schedule_run (tenant_id, install_id, scheduled_for, id);
DROP INDEX extension_schedule_run_install_idx;
ALTER INDEX extension_schedule_run_install2_idx RENAME TO extension_schedule_run_install_idx;

-- A status ("what failed?"): one status is one range; several are read per status and merged.
CREATE INDEX extension_schedule_run_status_idx
    ON extension_schedule_run (tenant_id, status, scheduled_for, id);

-- Run-nows and replays are rare among scheduled fires: a small partial index finds them without
-- reading past every fire.
CREATE INDEX extension_schedule_run_manual_idx
    ON extension_schedule_run (tenant_id, scheduled_for, id) WHERE trigger IN ('run_now', 'replay');
