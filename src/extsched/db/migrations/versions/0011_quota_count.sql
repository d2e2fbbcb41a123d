-- A create checks the quotas under the tenant's row lock, held to its commit (see
-- services/schedules.py). The count must be read after the lock is granted: in one SQL
-- statement it would read the snapshot taken before the wait and miss a create that committed
-- meanwhile. Here the lock and the count are two statements of a VOLATILE function, each with
-- its own snapshot (read committed), so the count sees every create that locked before; the
-- caller pays one round trip instead of two. No row when the tenant is missing.
CREATE FUNCTION extension_schedule_quota(p_tenant_id text, p_install_id uuid)
RETURNS TABLE (scheduled_tasks_enabled boolean, per_install bigint, per_tenant bigint,
               install_enabled boolean, kill_switch boolean)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_enabled boolean;
BEGIN
    SELECT t.scheduled_tasks_enabled INTO v_enabled
    FROM tenant t WHERE t.tenant_id = p_tenant_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT v_enabled,
           count(*) FILTER (WHERE s.install_id = p_install_id),
           count(*),
           (SELECT i.enabled FROM tenant_extension_install i
            WHERE i.tenant_id = p_tenant_id AND i.id = p_install_id),
           (SELECT t.kill_switch FROM tenant t WHERE t.tenant_id = p_tenant_id)
    FROM tenant_extension_schedule s WHERE s.tenant_id = p_tenant_id;
END
$$;
