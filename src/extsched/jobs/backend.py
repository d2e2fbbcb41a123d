"""The job-backend interface: what services need from whatever fires schedules.

Handles are created, changed and removed inside the service's unit of work: the postgres
backend writes its rows on the same connection (so they commit or roll back together);
a remote backend (Temporal) is called before the commit, and an exception from it rolls
the database change back (the API answers 503 BACKEND_UNAVAILABLE).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from extsched.db.pool import Conn


def handle_id(tenant_id: str, install_id: uuid.UUID, schedule_id: uuid.UUID) -> str:
    """Deterministic backend handle id (SPEC §9), so retries are idempotent."""
    return f"extsched:{tenant_id}:{install_id}:{schedule_id}"


HANDLE_PREFIX = "extsched:"


@dataclass(frozen=True)
class HandleSpec:
    """The desired state of one schedule's recurring handle."""

    tenant_id: str
    install_id: uuid.UUID
    schedule_id: uuid.UUID
    cron: str
    timezone: str
    paused: bool
    note: str | None = None
    # Policies that shape the fires (SPEC §5, §8); the defaults are the classic behaviour.
    dst_gap: str = "shift"
    dst_repeat: str = "first"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    paused_until: datetime | None = None
    jitter_seconds: int = 0

    @property
    def handle_id(self) -> str:
        return handle_id(self.tenant_id, self.install_id, self.schedule_id)


@dataclass(frozen=True)
class HandleInfo:
    """A handle as the backend has it (for reconciliation and the admin listing)."""

    handle_id: str
    tenant_id: str
    install_id: uuid.UUID
    schedule_id: uuid.UUID
    cron: str
    timezone: str
    paused: bool
    note: str | None
    next_fire_at: datetime | None


@dataclass(frozen=True)
class RunRequest:
    """A run-now: the run row already exists (queued); the backend must execute it once."""

    tenant_id: str
    install_id: uuid.UUID
    schedule_id: uuid.UUID
    run_id: uuid.UUID


class BackendError(Exception):
    """The backend refused or could not be reached; the caller rolls back."""


class JobBackend(Protocol):
    name: str
    #: Whether ``put_handles`` and ``delete_handles`` write on the caller's connection, so a
    #: rollback undoes them (postgres); otherwise they reach outside the database (Temporal)
    #: and callers make them after every check that could still fail.
    transactional: bool

    async def put_handles(self, conn: Conn, specs: Sequence[HandleSpec]) -> None:
        """Create or update handles to match ``specs`` (idempotent)."""

    async def delete_handles(
        self, conn: Conn, tenant_id: str, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> None:
        """Remove the handles of (install_id, schedule_id) pairs; missing ones are fine."""

    async def start_run(self, conn: Conn, request: RunRequest) -> None:
        """Arrange for a queued run to be executed once."""

    async def list_handles(self, conn: Conn, tenant_id: str | None = None) -> list[HandleInfo]:
        """Every handle the backend holds (of one tenant, or all when None)."""

    async def ping(self) -> bool:
        """Whether the backend is reachable (for /readyz)."""

    async def close(self) -> None:
        """Release connections."""
