"""Opaque keyset cursors: base64url JSON of the last item's sort key."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from extsched.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class BadCursor(ValidationFailed):
    """A cursor this service did not hand out: a 422 on the ``cursor`` field."""

    def __init__(self) -> None:
        super().__init__("invalid cursor", field_errors={"cursor": "invalid cursor"})


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The key list encoded in ``cursor``; raises BadCursor if it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor() from exc
    if not isinstance(data, list) or len(data) != arity:
        raise BadCursor()
    return data


def before_id(cursor: str | None) -> uuid.UUID | None:
    """The id an id-keyed page (newest first) continues before; None for the first page.

    Raises BadCursor for a cursor that is not one of ours.
    """
    if not cursor:
        return None
    try:
        return uuid.UUID(str(decode_cursor(cursor, 1)[0]))
    except ValueError:
        raise BadCursor() from None


def after_time_id(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The (time, id) a page ordered by (time DESC, id DESC) continues after; None for the
    first page. Raises BadCursor for a cursor that is not one of ours."""
    if not cursor:
        return None
    at, id_ = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(str(at))
        key = uuid.UUID(str(id_))
    except ValueError:
        raise BadCursor() from None
    if when.tzinfo is None:
        raise BadCursor()
    return when, key


def time_id_cursor(at: datetime, id_: uuid.UUID) -> str:
    return encode_cursor([at.isoformat(), str(id_)])
