"""What every service needs: settings, database, job backend, secrets, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from extsched.config import Settings
from extsched.crypto import SecretBox
from extsched.db.pool import Database
from extsched.domain.timing import utc_now
from extsched.jobs.backend import JobBackend
from extsched.services.platform_jwt import JwtVerifier
from extsched.services.supervision import LoopHealth


@dataclass
class AppContext:
    settings: Settings
    db: Database
    backend: JobBackend
    secrets: SecretBox
    clock: Callable[[], datetime] = field(default=utc_now)
    # Tenants this process has already made sure exist (a tenant comes with its first JWT).
    known_tenants: set[str] = field(default_factory=set)
    # The worker loops this process runs and whether they keep failing (for /readyz).
    loops: LoopHealth = field(default_factory=LoopHealth)

    @cached_property
    def jwt(self) -> JwtVerifier | None:
        """The host-platform JWT verifier (with its JWKS cache), when JWTs are configured."""
        return JwtVerifier(self.settings) if self.settings.jwt_enabled else None
