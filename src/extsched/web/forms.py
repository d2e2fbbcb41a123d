"""HTML form values <-> service inputs. Parsing only: every rule stays in the services."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from extsched.domain import inputs
from extsched.errors import ValidationFailed
from extsched.services.installs import Install, InstallSettings
from extsched.services.schedules import UNSET, Schedule, ScheduleInput


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


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

    @classmethod
    def of(cls, s: Schedule) -> ScheduleForm:
        return cls(
            name=s.name or "",
            endpoint_id=str(s.endpoint_id),
            cron=s.cron,
            timezone=s.timezone,
            enabled=s.enabled,
            payload="" if s.payload is None else json.dumps(s.payload, indent=2),
            revision=str(s.revision),
            original_endpoint_id=str(s.endpoint_id),
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
        )

    def payload_value(self) -> Any:
        """The payload as JSON, ``None`` when empty; a field error when it is not JSON or breaks
        the input rules (too deep, unstorable text)."""
        if not self.payload.strip():
            return None
        try:
            return inputs.loads(self.payload)
        except inputs.InputRefused as exc:
            message = exc.problem.message
        except ValueError as exc:
            message = f"is not valid JSON ({exc})"
        raise ValidationFailed("the schedule is invalid", field_errors={"payload": message})

    def for_create(self) -> ScheduleInput:
        return ScheduleInput(
            name=self.name.strip() or None,
            endpoint_id=self.endpoint_id or None,
            cron=self.cron or None,
            timezone=self.timezone or None,
            enabled=self.enabled,
            payload=self.payload_value(),
        )

    def for_update(self) -> ScheduleInput:
        """Every field, except an unchanged endpoint: a schedule whose endpoint went missing
        may still be renamed or re-timed without picking a new one."""
        changed_endpoint = self.endpoint_id != self.original_endpoint_id
        return ScheduleInput(
            name=self.name.strip() or None,
            endpoint_id=(self.endpoint_id or None) if changed_endpoint else UNSET,
            cron=self.cron or None,
            timezone=self.timezone or None,
            enabled=self.enabled,
            payload=self.payload_value(),
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
