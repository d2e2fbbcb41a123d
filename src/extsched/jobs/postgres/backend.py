"""The postgres job backend: handle rows in the service database.

Handles live in ``job_handle`` and are written on the caller's connection, so they commit or
roll back with the schedule change. The scheduler loop (``scheduler.py``) fires due handles.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from extsched.db.pool import Conn, Database
from extsched.domain import cron, timing
from extsched.jobs.backend import HandleInfo, HandleSpec, RunRequest


class PostgresBackend:
    name = "postgres"
    transactional = True

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def put_handles(self, conn: Conn, specs: Sequence[HandleSpec]) -> None:
        by_tenant: dict[str, list[HandleSpec]] = {}
        for spec in specs:
            by_tenant.setdefault(spec.tenant_id, []).append(spec)
        now = self.clock()
        for tenant_id, group in by_tenant.items():
            await self.db.execute(
                conn,
                "handles_put",
                {
                    "tenant_id": tenant_id,
                    "schedule_ids": [s.schedule_id for s in group],
                    "handle_ids": [s.handle_id for s in group],
                    "install_ids": [s.install_id for s in group],
                    "crons": [s.cron for s in group],
                    "timezones": [s.timezone for s in group],
                    "paused": [s.paused for s in group],
                    "notes": [s.note for s in group],
                    "next_fire_ats": [None if s.paused else _next_fire(s, now) for s in group],
                    "dst_gaps": [s.dst_gap for s in group],
                    "dst_repeats": [s.dst_repeat for s in group],
                    "starts_ats": [s.starts_at for s in group],
                    "ends_ats": [s.ends_at for s in group],
                    "paused_untils": [s.paused_until for s in group],
                    "jitter_seconds": [s.jitter_seconds for s in group],
                },
            )

    async def delete_handles(
        self, conn: Conn, tenant_id: str, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> None:
        if keys:
            await self.db.execute(
                conn,
                "handles_delete",
                {"tenant_id": tenant_id, "schedule_ids": [schedule_id for _, schedule_id in keys]},
            )

    async def start_run(self, conn: Conn, request: RunRequest) -> None:
        # The queued run row is the job: executors pick it up from extension_schedule_run.
        await conn.execute("SELECT pg_notify('extsched_runs', '')")

    async def list_handles(self, conn: Conn, tenant_id: str | None = None) -> list[HandleInfo]:
        rows = await self.db.fetch_all(conn, "handles_list", {"tenant_id": tenant_id})
        return [
            HandleInfo(
                handle_id=r["handle_id"],
                tenant_id=r["tenant_id"],
                install_id=r["install_id"],
                schedule_id=r["schedule_id"],
                cron=r["cron"],
                timezone=r["timezone"],
                paused=r["paused"],
                note=r["note"],
                next_fire_at=r["next_fire_at"],
            )
            for r in rows
        ]

    async def ping(self) -> bool:
        return await self.db.ping()

    async def close(self) -> None:
        return None


def _next_fire(spec: HandleSpec, now: datetime) -> datetime | None:
    """The handle's next fire with its DST choice: none before ``starts_at``/``paused_until``,
    none from ``ends_at`` on (fires outside the window are not made, SPEC §8)."""
    not_before = max((b for b in (spec.starts_at, spec.paused_until) if b), default=None)
    after = timing.window_start(now, not_before)
    dst = cron.DstChoice.of(spec.dst_gap, spec.dst_repeat)
    fire = cron.upcoming(spec.cron, spec.timezone, after, dst=dst)
    if fire is None or (spec.ends_at is not None and fire.at >= spec.ends_at):
        return None
    return fire.at
