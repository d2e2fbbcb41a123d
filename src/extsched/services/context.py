"""What every service needs: settings, database, job backend, secrets, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from extsched.config import Settings
from extsched.crypto import SecretBox
from extsched.db.pool import Database
from extsched.jobs.backend import JobBackend


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    settings: Settings
    db: Database
    backend: JobBackend
    secrets: SecretBox
    clock: Callable[[], datetime] = field(default=utc_now)
