"""Opaque cursors: base64url JSON of the last item's sort key."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class BadCursor(ValueError):
    pass


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The key list encoded in ``cursor``; raises BadCursor if it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("invalid cursor") from exc
    if not isinstance(data, list) or len(data) != arity:
        raise BadCursor("invalid cursor")
    return data
