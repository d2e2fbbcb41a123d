"""The tenant commands' HTTP client: where the service is, who calls it, and one error type
for every API error (SPEC §5 error shape) or transport failure.

The URL and token come from ``--url``/``EXTSCHED_URL`` and ``--token``/``EXTSCHED_TOKEN``,
else from a profile saved by ``extsched login`` in ``credentials.json`` under the user's
config folder (``$XDG_CONFIG_HOME/extsched`` on Linux), readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer

DEFAULT_PROFILE = "default"
TIMEOUT_S = 30.0


class ApiError(Exception):
    """An API error body (``code``, ``message``, ``field_errors``, ``details``) or a
    failure to reach the service (``code`` ``UNREACHABLE``)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        field_errors: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.field_errors = field_errors or {}
        self.details = details or {}

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            error = response.json()["error"]
            return cls(
                str(error["code"]),
                str(error["message"]),
                status=response.status_code,
                field_errors=error.get("field_errors"),
                details=error.get("details"),
            )
        except (ValueError, KeyError, TypeError):
            reason = response.reason_phrase or "error"
            return cls(f"HTTP_{response.status_code}", reason, status=response.status_code)


def credentials_path() -> Path:
    return Path(typer.get_app_dir("extsched")) / "credentials.json"


def _read_credentials() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"profiles": {}}
    except (OSError, ValueError) as exc:
        raise ApiError("CONFIG", f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {"profiles": {}}


def save_profile(name: str, url: str, token: str) -> Path:
    """Write (or replace) a profile; the file is created with mode 0600."""
    data = _read_credentials()
    data.setdefault("profiles", {})[name] = {"url": url, "token": token}
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(path, 0o600)  # an older file may have been created with other bits
    return path


def remove_profile(name: str) -> bool:
    data = _read_credentials()
    if data.get("profiles", {}).pop(name, None) is None:
        return False
    save = credentials_path()
    fd = os.open(save, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    return True


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def resolve(url: str | None, token: str | None, profile: str | None) -> Target:
    """Flags and variables first, then the profile (``--profile``, else ``default``)."""
    saved = _read_credentials().get("profiles", {}).get(profile or DEFAULT_PROFILE) or {}
    if profile and not saved:
        raise ApiError("CONFIG", f"no saved profile {profile!r}: run `extsched login`")
    url = url or saved.get("url")
    token = token or saved.get("token")
    if not url:
        raise ApiError("CONFIG", "no service URL: give --url, set EXTSCHED_URL or run login")
    if not token:
        raise ApiError("CONFIG", "no token: give --token, set EXTSCHED_TOKEN or run login")
    return Target(url.rstrip("/"), token)


class Api:
    """A synchronous client of ``/api/v1``; every non-2xx answer raises ApiError."""

    def __init__(self, target: Target, *, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(
            base_url=f"{target.url}/api/v1",
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=TIMEOUT_S,
            transport=transport,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON body (None for 204)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            r = self.http.request(method, path, json=json, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError("UNREACHABLE", f"{self.http.base_url}: {exc}") from exc
        if r.status_code >= 400:
            raise ApiError.of(r)
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, json=body, **kw)

    # ------------------------------------------------------------------ look-ups by name
    def install(self, extension: str) -> dict[str, Any]:
        """The tenant's install of an extension given by name or id."""
        items: list[dict[str, Any]] = self.get("/extensions")["items"]
        for i in items:
            if extension in (i["name"], i["extension_id"]):
                return i
        raise ApiError("NOT_INSTALLED", f"{extension} is not installed for this tenant")

    def extension_id(self, extension: str) -> str:
        """An extension's id from its name or id, installed or not (the registry is public
        to tenants through the installs they have; otherwise an id must be given)."""
        for i in self.get("/extensions")["items"]:
            if extension in (i["name"], i["extension_id"]):
                return str(i["extension_id"])
        return extension

    def schedule(self, ref: str, extension: str | None = None) -> dict[str, Any]:
        """A schedule by id, or by name within ``--extension`` (case-insensitive)."""
        if extension is None:
            return dict(self.get(f"/schedules/{ref}"))
        install = self.install(extension)
        items = self.get(f"/extensions/{install['extension_id']}/schedules")["items"]
        for s in items:
            if ref == s["id"] or (s["name"] or "").lower() == ref.lower():
                return dict(self.get(f"/schedules/{s['id']}"))
        raise ApiError("NOT_FOUND", f"no schedule {ref!r} in {install['name']}")
