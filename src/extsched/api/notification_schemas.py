"""Request and response schemas of the notification routes (SPEC §5 Notifications)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictStr

from extsched.api.schemas import Strict, UtcTime
from extsched.domain.notify import MAX_URL_CHARS
from extsched.services.notifications import Delivery, NotificationSettings

EventName = Literal[
    "run_failed", "schedule_disabled", "schedule_recovered", "schedule_overdue", "test"
]


class NotificationsIn(Strict):
    webhook_url: StrictStr | None = Field(max_length=MAX_URL_CHARS)
    events: list[EventName] = Field(max_length=10)
    enabled: StrictBool


class NotificationsOut(BaseModel):
    webhook_url: str | None
    events: list[str]
    enabled: bool
    secret_hint: str | None = Field(
        description="The end of the signing secret (whsec_…abcd), to tell secrets apart"
    )

    @classmethod
    def of(cls, s: NotificationSettings) -> NotificationsOut:
        return cls(
            webhook_url=s.webhook_url, events=s.events, enabled=s.enabled, secret_hint=s.secret_hint
        )


class NotificationSecretOut(BaseModel):
    secret: str = Field(description="The Standard Webhooks secret (whsec_...) signing deliveries")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    type: str
    at: UtcTime
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    http_status: int | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            type=d.type,
            at=d.at,
            status=d.status,
            attempts=d.attempts,
            last_error=d.last_error,
            http_status=d.http_status,
        )


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
