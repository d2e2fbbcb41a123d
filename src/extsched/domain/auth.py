"""Permissions and the authenticated principal (pure)."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass


class Permission(enum.StrEnum):
    READ = "extension:read"
    WRITE = "extension:write"
    ADMIN = "platform:admin"


DEFAULT_USER_PERMISSIONS = (Permission.READ, Permission.WRITE)
TENANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ActorType(enum.StrEnum):
    USER = "user"
    SYSTEM = "system"
    ADMIN = "admin"


@dataclass(frozen=True)
class Actor:
    """Who made a change, as written to the audit log."""

    type: ActorType
    id: str | None

    @classmethod
    def system(cls, what: str = "extsched") -> Actor:
        return cls(ActorType.SYSTEM, what)


@dataclass(frozen=True)
class Principal:
    """The caller behind a bearer token or a host-platform JWT (``token_id`` None)."""

    token_id: uuid.UUID | None
    tenant_id: str | None
    user_id: str | None
    user_timezone: str | None
    is_admin: bool
    permissions: frozenset[Permission]

    def has(self, perm: Permission) -> bool:
        return perm in self.permissions

    @property
    def actor(self) -> Actor:
        if self.is_admin:
            return Actor(ActorType.ADMIN, self.user_id or str(self.token_id))
        return Actor(ActorType.USER, self.user_id)
