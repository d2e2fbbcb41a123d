"""One typed settings object, read from ``EXTSCHED_*`` variables and validated at start.

Every secret-bearing variable also accepts a ``*_FILE`` variant holding a path to a file
with the value (for container secrets).
"""

from __future__ import annotations

import base64
import contextlib
import enum
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class JobBackendKind(enum.StrEnum):
    POSTGRES = "postgres"
    TEMPORAL = "temporal"


_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "xxx", "changethis"}
# Never echoed in a configuration error: the rejected value may be the real secret.
_SECRET_FIELDS = {"secret_key", "session_secret", "runner_token", "jwt_secret"}
MIN_RUNNER_TOKEN_CHARS = 16


class Settings(BaseSettings):
    """Service configuration. Invalid values stop the process with one line naming the variable."""

    model_config = SettingsConfigDict(env_prefix="EXTSCHED_", extra="ignore", frozen=True)

    database_url: str | None = None
    home: Path = Field(default_factory=lambda: Path.home() / ".extsched")
    job_backend: JobBackendKind = JobBackendKind.POSTGRES
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "extsched"
    runner_url: str | None = None
    runner_timeout_ms: int = Field(default=30_000, ge=100, le=15 * 60 * 1000)
    runner_max_response_bytes: int = Field(default=262_144, ge=1024, le=64 * 1024 * 1024)
    min_interval_seconds: int = Field(default=300, ge=60, le=366 * 86400)
    max_schedules_per_install: int = Field(default=50, ge=1)
    max_schedules_per_tenant: int = Field(default=500, ge=1)
    max_payload_bytes: int = Field(default=100_000, ge=2, le=1_000_000)
    run_now_per_schedule: int = Field(default=5, ge=1)
    run_now_per_tenant: int = Field(default=60, ge=1)
    max_attempts: int = Field(default=3, ge=1, le=20)
    max_timeout_ms: int = Field(default=300_000, ge=1000, le=60 * 60 * 1000)
    pause_after_failures: int = Field(default=10, ge=0)
    catchup_window_seconds: int = Field(default=600, ge=0)
    run_retention_days: int = Field(default=90, ge=1, le=100 * 366)
    audit_retention_days: int = Field(default=400, ge=1, le=100 * 366)
    secret_key: str | None = None
    runner_token: SecretStr | None = None
    # Operational knobs beyond the SPEC's list (documented in docs/operations.md).
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=20, ge=1)
    worker_concurrency: int = Field(default=32, ge=1, le=1024)
    scheduler_batch_size: int = Field(default=500, ge=1, le=10_000)
    reconcile_interval_seconds: int = Field(default=300, ge=0)
    retry_base_seconds: float = Field(default=10.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    lease_grace_seconds: float = Field(default=30.0, gt=0, le=3600)
    scheduler_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_stop_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
    overdue_grace_seconds: int = Field(default=120, ge=10)
    # Retention passes (SPEC §10): how often, and how many rows one DELETE removes.
    retention_interval_seconds: int = Field(default=3600, ge=0)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Pause between two full batches, so a large backlog (the first pass after an upgrade)
    # drains in the background without competing with fires for CPU and I/O.
    retention_batch_pause_seconds: float = Field(default=0.1, ge=0, le=60)
    # A failing worker loop retries after 1 s, 2 s, 4 s... capped here.
    loop_backoff_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Notifications (SPEC §5, §9; docs/notifications.md).
    notify_allow_private: bool = False
    notify_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    notify_per_minute: int = Field(default=30, ge=1, le=6000)
    notify_concurrency: int = Field(default=8, ge=1, le=256)
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    notify_retry_base_seconds: float = Field(default=30.0, gt=0, le=3600)
    notify_retry_max_seconds: float = Field(default=3600.0, gt=0, le=86400)
    notify_give_up_seconds: float = Field(default=86400.0, gt=0, le=7 * 86400)
    notify_retention_days: int = Field(default=30, ge=1, le=100 * 366)
    session_secret: str | None = None
    log_level: str = "INFO"
    # Host-platform identity (SPEC §4): JWTs signed with this HS256 secret or JWKS keys.
    jwt_secret: str | None = Field(default=None, min_length=32)
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # A JWKS is refetched for an unknown key id at most this often, and refreshed in the
    # background when older than the second value (known keys never wait for a fetch).
    jwt_jwks_min_refetch_seconds: float = Field(default=5.0, ge=0, le=3600)
    jwt_jwks_max_age_seconds: float = Field(default=600.0, ge=1, le=86400)

    @field_validator("secret_key", "session_secret", "runner_token", "jwt_secret", mode="before")
    @classmethod
    def _refuse_placeholders(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; set a real random value")
        return value

    @field_validator("runner_token")
    @classmethod
    def _check_runner_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_token_text(value.get_secret_value())
        return value

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("runner_url")
    @classmethod
    def _check_runner_url(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.startswith(("http://", "https://")):
                raise ValueError("must be an http:// or https:// URL")
            return value.rstrip("/")
        return value

    @field_validator("jwt_jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.jwt_secret or self.jwt_jwks_url)

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("EXTSCHED_DB_POOL_MIN must not exceed EXTSCHED_DB_POOL_MAX")
        return self

    @cached_property
    def secret_key_bytes(self) -> bytes:
        """The 32-byte key for secrets at rest; generated into ``home`` on first use."""
        if self.secret_key:
            return _decode_key(self.secret_key, "EXTSCHED_SECRET_KEY")
        path = self.home / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        return _decode_key(path.read_text().strip(), str(path))

    @cached_property
    def runner_token_value(self) -> str:
        """The bearer token for Runner calls; generated into ``home`` on first use.

        Every process sharing ``home`` (``serve``, or ``worker`` + ``runner`` on one host) reads
        the same file; processes on other hosts need the variable (or ``_FILE``) set.
        """
        if self.runner_token is not None:
            return self.runner_token.get_secret_value()
        path = self.home / "runner.token"
        if not path.exists():
            _create_private(path, secrets.token_urlsafe(32))
        try:
            text = path.read_text().strip()
            _check_token_text(text)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError(f"{path}: {reason} (delete it to generate a new token)") from exc
        return text


def _create_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by the owner only, unless ``path`` exists.

    Written to a temporary file first and linked into place, so a process starting at the
    same moment either finds no file or a complete one, never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        # If another process won the race, its value is the one everybody uses.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()


def _check_token_text(text: str) -> None:
    """Refuse a Runner token that is too short or cannot travel in an HTTP header."""
    if len(text) < MIN_RUNNER_TOKEN_CHARS:
        raise ValueError(f"must be at least {MIN_RUNNER_TOKEN_CHARS} characters")
    if not all("!" <= ch <= "~" for ch in text):
        raise ValueError("must be printable ASCII without spaces")


def _decode_key(text: str, source: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
    except ValueError as exc:
        raise ConfigError(f"{source}: not valid base64") from exc
    if len(raw) != 32:
        raise ConfigError(f"{source}: must be 32 bytes, base64-encoded (got {len(raw)} bytes)")
    return raw


class ConfigError(Exception):
    """Raised at start for an invalid configuration; the message is one line."""


def _apply_file_variants() -> None:
    for name in (
        "EXTSCHED_SECRET_KEY",
        "EXTSCHED_DATABASE_URL",
        "EXTSCHED_SESSION_SECRET",
        "EXTSCHED_RUNNER_TOKEN",
        "EXTSCHED_JWT_SECRET",
    ):
        file_var = f"{name}_FILE"
        if file_var in os.environ and name not in os.environ:
            try:
                os.environ[name] = Path(os.environ[file_var]).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"{file_var}: cannot read {exc.filename}: {exc.strerror}"
                ) from exc


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError with one line naming the variable."""
    _apply_file_variants()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err["loc"] else ""
        name = f"EXTSCHED_{loc.upper()}" if loc else "configuration"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if loc in _SECRET_FIELDS:
            raise ConfigError(f"{name}: {msg}") from None
        raise ConfigError(f"{name}: {msg} (got {err.get('input')!r})") from None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
