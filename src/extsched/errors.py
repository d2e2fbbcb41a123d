"""One root error with small subclasses; each carries its API ``code`` and HTTP status.

Routers, the UI and the CLI all render these; nobody builds an error body by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ExtschedError(Exception):
    """Root of every expected error. ``to_body()`` gives the SPEC §5 error shape."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        field_errors: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.field_errors = field_errors
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field_errors:
            error["field_errors"] = self.field_errors
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ExtschedError):
    code, status, default_message = "BAD_REQUEST", 400, "malformed request"


class Unauthenticated(ExtschedError):
    code, status, default_message = "UNAUTHENTICATED", 401, "missing or invalid bearer token"


class Forbidden(ExtschedError):
    code, status, default_message = "FORBIDDEN", 403, "missing permission"


class NotFound(ExtschedError):
    code, status, default_message = "NOT_FOUND", 404, "not found"


class NotInstalled(ExtschedError):
    code, status, default_message = "NOT_INSTALLED", 404, "extension is not installed"


class FeatureDisabled(ExtschedError):
    code, status = "FEATURE_DISABLED", 404
    default_message = "scheduled tasks are not enabled for this tenant"


class InstallDisabled(ExtschedError):
    code, status, default_message = "INSTALL_DISABLED", 409, "the extension install is disabled"


class SchedulesPaused(ExtschedError):
    code, status = "SCHEDULES_PAUSED", 409
    default_message = "schedules of this tenant are paused by the kill switch"


class ScheduleRemapFailed(ExtschedError):
    code, status = "SCHEDULE_REMAP_FAILED", 409
    default_message = "some schedules have no matching endpoint in the target version"


class RevisionConflict(ExtschedError):
    code, status = "REVISION_CONFLICT", 409
    default_message = "the schedule was changed by someone else; reload and retry"


class VersionInUse(ExtschedError):
    code, status, default_message = "VERSION_IN_USE", 409, "the version is used by an install"


class AlreadyInstalled(ExtschedError):
    code, status, default_message = "ALREADY_INSTALLED", 409, "the extension is already installed"


class VersionExists(ExtschedError):
    """Re-publishing a name+version with different content (the SPEC names no code for it)."""

    code, status = "VERSION_EXISTS", 409
    default_message = "this version was already published with different content"


class RequestTooLarge(ExtschedError):
    code, status, default_message = "REQUEST_TOO_LARGE", 413, "request body is over 1 MiB"


class ValidationFailed(ExtschedError):
    code, status, default_message = "VALIDATION_FAILED", 422, "the request is invalid"


class QuotaExceeded(ExtschedError):
    code, status, default_message = "QUOTA_EXCEEDED", 422, "quota exceeded"


class RateLimited(ExtschedError):
    code, status, default_message = "RATE_LIMITED", 429, "too many requests"


class BackendUnavailable(ExtschedError):
    code, status = "BACKEND_UNAVAILABLE", 503
    default_message = "the job backend or database is unavailable; nothing was changed"


def field_error(field: str, message: str) -> ValidationFailed:
    """Shorthand for a 422 with one field error."""
    return ValidationFailed(f"{field}: {message}", field_errors={field: message})
