"""Logging setup: one line per event, ``key=value`` context (tenant, schedule, run ids)."""

from __future__ import annotations

import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``2026-11-27T09:00:00Z INFO extsched.jobs run finished run_id=... status=...``

    Times are UTC, marked ``Z``, so lines from hosts in different zones compare as they are.
    """

    @staticmethod
    def converter(secs: float | None = None) -> time.struct_time:
        return time.gmtime(secs)

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            base += " " + " ".join(f"{k}={_fmt(v)}" for k, v in extras.items())
        return base


def _fmt(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def formatter() -> KeyValueFormatter:
    """The service's line format (UTC times)."""
    return KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "pgserver", "alembic", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
