"""Request signatures between the Runner and an extension's upstream.

The reference Runner sends ``x-extsched-signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256, keyed by the install's signing secret, of the bytes ``f"{t}."`` followed by the
exact request body (empty for a GET). An upstream verifies with ``verify_signature``: recompute,
compare in constant time, and refuse timestamps outside a tolerance window (replay protection).
Several ``v1=`` entries may appear (e.g. during secret rotation); one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "x-extsched-signature"
DEFAULT_TOLERANCE_S = 300


def _digest(secret: bytes, body: bytes, t: int) -> str:
    return hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, t: int) -> str:
    """Return the signature header value ``t=<t>,v1=<hex HMAC-SHA256(secret, "t." + body)>``."""
    return f"t={t},v1={_digest(secret, body, t)}"


def verify_signature(
    secret: bytes,
    body: bytes,
    header: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its time is within ``tolerance_s``.

    Malformed headers are simply invalid (False), never an exception.
    """
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            candidates.append(value)
    if len(timestamps) != 1 or not candidates:
        return False
    raw_t = timestamps[0]
    if not (raw_t.isascii() and raw_t.isdigit()) or len(raw_t) > 12:
        return False
    t = int(raw_t)
    current = int(time.time()) if now is None else now
    if abs(current - t) > tolerance_s:
        return False
    expected = _digest(secret, body, t).encode()
    # Compare against every candidate (no early exit) so timing reveals nothing about which.
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in candidates]
    return any(matches)
