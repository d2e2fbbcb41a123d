"""HTML form values <-> service inputs. Parsing only: every rule stays in the services."""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.datastructures import FormData

from extsched.domain import inputs
from extsched.errors import ValidationFailed
from extsched.services.installs import Install, InstallSettings
from extsched.services.schedules import UNSET, Schedule, ScheduleInput
from extsched.web.policies import DEFAULT_VALUES


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def json_value(text: str, field: str, errors: dict[str, str]) -> Any:
    """``text`` as JSON, ``None`` when empty; a field error when it is not JSON or breaks the
    input rules (too deep, unstorable text)."""
    if not text.strip():
        return None
    try:
        return inputs.loads(text)
    except inputs.InputRefused as exc:
        errors[field] = exc.problem.message
    except ValueError as exc:
        errors[field] = f"is not valid JSON ({exc})"
    return None


def local_instant(text: str, zone: str, field: str, errors: dict[str, str]) -> datetime | None:
    """A ``datetime-local`` value (``2026-03-10T09:00``) read on ``zone``'s wall clock."""
    if not text.strip():
        return None
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError:
        errors[field] = "must be a date and time"
        return None
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(zone))


def whole_number(text: str, field: str, errors: dict[str, str]) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        errors[field] = "must be a whole number"
        return None


def seconds_as_ms(text: str, field: str, errors: dict[str, str]) -> int | None:
    """Seconds typed in the form (``2.5`` allowed) as the API's milliseconds."""
    if not text.strip():
        return None
    try:
        seconds = float(text.strip())
    except ValueError:
        errors[field] = "must be a number of seconds"
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        errors[field] = "must be a number of seconds"
        return None
    return round(seconds * 1000)


# Form field -> service field, where the form shows another unit.
FORM_FIELDS = {"timeout_ms": "timeout_seconds"}
POLICY_FORM_FIELDS = (
    "overlap",
    "max_attempts",
    "timeout_seconds",
    "jitter_seconds",
    "starts_at",
    "ends_at",
    "dst_gap",
    "dst_repeat",
)


def form_errors(field_errors: dict[str, str], max_timeout_ms: int) -> dict[str, str]:
    """The service's field errors under the form's field names (and units)."""
    errors = {}
    for key, message in field_errors.items():
        if key == "timeout_ms":
            message = f"must be from 1 to {max_timeout_ms / 1000:g} seconds"
        elif key == "ends_at":
            message = message.replace("after starts_at", "after the start (From)")
        errors[FORM_FIELDS.get(key, key)] = message
    return errors


@dataclass
class ScheduleForm:
    """What the schedule form shows; kept as typed so a refused form re-renders unchanged."""

    name: str = ""
    endpoint_id: str = ""
    cron: str = ""
    timezone: str = ""
    enabled: bool = True
    payload: str = ""
    revision: str = ""
    original_endpoint_id: str = ""
    # Policies (SPEC §5); empty means the default. The timeout is in seconds, the window
    # bounds are datetime-local values on the viewer's wall clock.
    overlap: str = ""
    max_attempts: str = ""
    timeout_seconds: str = ""
    jitter_seconds: str = ""
    starts_at: str = ""
    ends_at: str = ""
    dst_gap: str = ""
    dst_repeat: str = ""

    @property
    def has_policies(self) -> bool:
        return any(getattr(self, f) for f in POLICY_FORM_FIELDS)

    @classmethod
    def of(cls, s: Schedule, zone: str) -> ScheduleForm:
        p = s.policies

        def local(value: datetime | None) -> str:
            if value is None:
                return ""
            return value.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")

        def choice(name: str, value: str | None) -> str:
            return "" if value is None or DEFAULT_VALUES.get(name) == value else value

        timeout = "" if p.timeout_ms is None else f"{p.timeout_ms / 1000:g}"
        return cls(
            name=s.name or "",
            endpoint_id=str(s.endpoint_id),
            cron=s.cron,
            timezone=s.timezone,
            enabled=s.enabled,
            payload="" if s.payload is None else json.dumps(s.payload, indent=2),
            revision=str(s.revision),
            original_endpoint_id=str(s.endpoint_id),
            overlap=choice("overlap", p.overlap),
            max_attempts="" if p.max_attempts is None else str(p.max_attempts),
            timeout_seconds=timeout,
            jitter_seconds="" if p.jitter_seconds is None else str(p.jitter_seconds),
            starts_at=local(p.starts_at),
            ends_at=local(p.ends_at),
            dst_gap=choice("dst_gap", p.dst_gap),
            dst_repeat=choice("dst_repeat", p.dst_repeat),
        )

    @classmethod
    def parse(cls, form: FormData) -> ScheduleForm:
        return cls(
            name=text(form, "name"),
            endpoint_id=text(form, "endpoint_id").strip(),
            cron=text(form, "cron").strip(),
            timezone=text(form, "timezone").strip(),
            enabled=text(form, "enabled") in ("on", "true", "1"),
            payload=text(form, "payload"),
            revision=text(form, "revision").strip(),
            original_endpoint_id=text(form, "original_endpoint_id").strip(),
            **{f: text(form, f).strip() for f in POLICY_FORM_FIELDS},
        )

    def _values(self, zone: str) -> dict[str, Any]:
        """The payload and policies as the services take them (``None`` for an empty field,
        the default); field errors for what is not even a number, JSON or date."""
        errors: dict[str, str] = {}
        values = {
            "payload": json_value(self.payload, "payload", errors),
            "overlap": self.overlap or None,
            "max_attempts": whole_number(self.max_attempts, "max_attempts", errors),
            "timeout_ms": seconds_as_ms(self.timeout_seconds, "timeout_seconds", errors),
            "jitter_seconds": whole_number(self.jitter_seconds, "jitter_seconds", errors),
            "starts_at": local_instant(self.starts_at, zone, "starts_at", errors),
            "ends_at": local_instant(self.ends_at, zone, "ends_at", errors),
            "dst_gap": self.dst_gap or None,
            "dst_repeat": self.dst_repeat or None,
        }
        if errors:
            raise ValidationFailed("the schedule is invalid", field_errors=errors)
        return values

    def for_create(self, zone: str) -> ScheduleInput:
        """``zone``: the viewer's, on whose wall clock the window's dates are read."""
        return ScheduleInput(
            name=self.name.strip() or None,
            endpoint_id=self.endpoint_id or None,
            cron=self.cron or None,
            timezone=self.timezone or None,
            enabled=self.enabled,
            **self._values(zone),
        )

    def for_update(self, zone: str) -> ScheduleInput:
        """Every field, except an unchanged endpoint: a schedule whose endpoint went missing
        may still be renamed or re-timed without picking a new one. The pause is left as it
        is (the schedule page sets it)."""
        changed_endpoint = self.endpoint_id != self.original_endpoint_id
        return ScheduleInput(
            name=self.name.strip() or None,
            endpoint_id=(self.endpoint_id or None) if changed_endpoint else UNSET,
            cron=self.cron or None,
            timezone=self.timezone or None,
            enabled=self.enabled,
            **self._values(zone),
        )

    @property
    def revision_value(self) -> int | None:
        return int(self.revision) if self.revision.isdigit() else None


@dataclass
class SettingsForm:
    config: str = ""
    providers: list[str] = field(default_factory=list)
    secret_name: str = ""
    remove_secrets: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, install: Install) -> SettingsForm:
        lines = [f"{k}={v}" for k, v in sorted(install.config.items())]
        return cls(config="\n".join(lines), providers=list(install.providers))

    @classmethod
    def parse(cls, form: FormData) -> tuple[SettingsForm, str]:
        """The form and the new secret's value (kept out of the re-rendered form)."""
        return (
            cls(
                config=text(form, "config"),
                providers=[p for p in form.getlist("providers") if isinstance(p, str)],
                secret_name=text(form, "secret_name").strip(),
                remove_secrets=[s for s in form.getlist("remove_secret") if isinstance(s, str)],
            ),
            text(form, "secret_value"),
        )

    def to_settings(self, secret_value: str) -> InstallSettings:
        errors: dict[str, str] = {}
        config: dict[str, str] = {}
        for number, line in enumerate(self.config.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                errors["config"] = f"line {number}: expected NAME=value"
                break
            if key in config:
                errors["config"] = f"line {number}: {key} is set twice"
                break
            config[key] = value.strip()
        secrets: dict[str, str | None] = {name: None for name in self.remove_secrets}
        if self.secret_name:
            if not secret_value:
                errors["secret_value"] = "enter the secret's value"
            else:
                secrets[self.secret_name] = secret_value
        elif secret_value:
            errors["secret_name"] = "enter a name for the secret"
        if errors:
            raise ValidationFailed("the settings are invalid", field_errors=errors)
        return InstallSettings(config=config, secrets=secrets or None, providers=self.providers)
