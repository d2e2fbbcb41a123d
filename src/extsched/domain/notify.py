"""Notifications, the pure part (SPEC §4, §5, §9): event types, the webhook URL rules, which
addresses a webhook may reach, the delivery backoff and the payload a receiver gets."""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
MAX_ERROR_CHARS = 500

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EventType(enum.StrEnum):
    RUN_FAILED = "run_failed"
    SCHEDULE_DISABLED = "schedule_disabled"
    SCHEDULE_RECOVERED = "schedule_recovered"
    SCHEDULE_OVERDUE = "schedule_overdue"
    TEST = "test"


# What a tenant subscribes to when it has not chosen (``test`` is always sent on request).
DEFAULT_EVENTS = (
    EventType.RUN_FAILED,
    EventType.SCHEDULE_DISABLED,
    EventType.SCHEDULE_RECOVERED,
    EventType.SCHEDULE_OVERDUE,
)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class UrlRefused(ValueError):
    """A webhook URL (or the addresses its name resolves to) that may not be called."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A parsed webhook URL: where to connect, and what to say in ``Host`` and TLS SNI."""

    url: str
    scheme: str
    host: str  # a name or an IP literal, without brackets
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL with its host replaced by ``address``: the connection goes to the address
        that was checked, never to a second resolution of the name."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"

    def literal(self) -> IPAddress | None:
        """The host as an IP address when the URL names one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_url(url: str) -> WebhookTarget:
    """Check a webhook URL's form (SPEC §4: http or https only); raises UrlRefused."""
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"must be at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise UrlRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused("must be an http:// or https:// URL")
    if not parts.hostname:
        raise UrlRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("must not carry credentials; authenticate with the signature instead")
    if parts.fragment:
        raise UrlRefused("must not have a #fragment")
    try:
        # Sent in the Host header and SNI, which are ASCII: an IDN travels as punycode.
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise UrlRefused("must name a valid host") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookTarget(
        url=url,
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        target=target,
    )


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a webhook may not connect to ``address`` (unless private addresses are allowed):
    loopback, private, link-local, multicast and the other non-public ranges; None if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private or address.is_reserved or not address.is_global:
        return "private"
    return None


def check_addresses(host: str, addresses: list[IPAddress], *, allow_private: bool) -> IPAddress:
    """The address to connect to, after checking every address ``host`` resolved to: one bad
    address refuses the name (a resolver may answer differently next time)."""
    if not addresses:
        raise UrlRefused(f"{host} does not resolve to any address")
    if not allow_private:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason is not None:
                raise UrlRefused(f"{host} resolves to a {reason} address ({address})")
    return addresses[0]


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """The wait after the ``attempts``-th failed attempt: base, 2x base, 4x base... capped."""
    return float(min(cap, base * math.pow(2, min(attempts - 1, 40))))


def next_attempt(
    *, attempts: int, now: datetime, created_at: datetime, base: float, cap: float, give_up: float
) -> datetime | None:
    """When to try a failed delivery again, or None once ``give_up`` seconds have passed since
    it was queued (the delivery is then ``failed``)."""
    at = now + timedelta(seconds=backoff_seconds(attempts, base, cap))
    if (at - created_at).total_seconds() > give_up:
        return None
    return at


def rfc3339(value: datetime) -> str:
    """``2026-12-01T09:00:00Z`` (SPEC §5: RFC 3339 UTC with Z, whole seconds)."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return rfc3339(value)
    return rfc3339(datetime.fromisoformat(str(value)))


def payload(
    *,
    type: str,
    at: datetime,
    tenant_id: str,
    facts: Mapping[str, Any],
    count: int,
) -> dict[str, Any]:
    """The body a receiver gets (SPEC §5): ``{type, at, tenant_id, extension_id?,
    schedule?:{id, name}, run?:{id, status, scheduled_for, http_status, error}}``; a folded
    ``run_failed`` also says how many failed runs it stands for (``count``)."""
    body: dict[str, Any] = {"type": type, "at": rfc3339(at), "tenant_id": tenant_id}
    if facts.get("extension_id") is not None:
        body["extension_id"] = str(facts["extension_id"])
    schedule = facts.get("schedule")
    if schedule:
        body["schedule"] = {"id": str(schedule["id"]), "name": schedule.get("name")}
    run = facts.get("run")
    if run:
        body["run"] = {
            "id": str(run["id"]),
            "status": run["status"],
            "scheduled_for": _iso_or_none(run.get("scheduled_for")),
            "http_status": run.get("http_status"),
            "error": run.get("error"),
        }
    if type == EventType.RUN_FAILED:
        body["count"] = count
    for key in ("message", "overdue_since", "disabled_reason"):
        if facts.get(key) is not None:
            body[key] = facts[key]
    return body


def secret_hint(secret: str) -> str:
    """Enough of a secret to tell two apart, too little to use: ``whsec_…Ab3d``."""
    return f"whsec_…{secret[-4:]}"


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"
