"""Time-ordered UUIDs (version 7, RFC 9562), so ids sort by creation time for cursors."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, then 74 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 68 & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b (62 bits)
    return uuid.UUID(int=value)


def uuid7_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond ``at``: every id made before ``at`` sorts
    below it (ids, and so primary keys, double as a creation-time index)."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=(ms & 0xFFFF_FFFF_FFFF) << 80)
