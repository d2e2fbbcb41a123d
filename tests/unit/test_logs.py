"""Log lines: UTC times marked ``Z``, then level, logger, message and ``key=value`` context."""

from __future__ import annotations

import logging

from extsched import logs


def test_it_writes_utc_times_marked_with_their_zone() -> None:
    record = logging.LogRecord("extsched.jobs", logging.INFO, "", 0, "run finished", (), None)
    record.created = 1_795_770_000.0  # 2026-11-27T09:00:00Z, whatever the host zone
    record.run_id = "r1"
    record.status = "timed out"
    line = logs.formatter().format(record)
    assert line == (
        '2026-11-27T09:00:00Z INFO extsched.jobs run finished run_id=r1 status="timed out"'
    )
