"""Prometheus metrics (SPEC §9). No tenant or schedule ids as labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_TOTAL = Counter("extsched_runs_total", "Finished runs", ["status", "trigger"])
RUN_DURATION = Histogram(
    "extsched_run_duration_seconds",
    "Duration of finished runs (all attempts)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
FIRE_LAG = Histogram(
    "extsched_fire_lag_seconds",
    "Start of the first attempt minus scheduled_for",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
RUNS_SKIPPED = Counter("extsched_runs_skipped_total", "Skipped fires", ["reason"])
SCHEDULES = Gauge("extsched_schedules", "Schedules by state", ["state"])
SCHEDULES_OVERDUE = Gauge(
    "extsched_schedules_overdue", "Enabled schedules whose expected fire did not run in time"
)
SCHEDULES_INVALID = Counter(
    "extsched_schedules_invalid_total",
    "Schedules disabled because they could not be evaluated or executed (fault isolation)",
)
WORKER_LOOP_FAILURES = Counter(
    "extsched_worker_loop_failures_total", "Failed passes of a worker loop", ["loop"]
)
MAINTENANCE_PASSES = Counter(
    "extsched_maintenance_passes_total",
    "Maintenance passes run by this process (another worker may hold the lock)",
    ["task", "result"],
)
RETENTION_DELETED = Counter(
    "extsched_retention_deleted_total", "Rows deleted by retention", ["table"]
)
NOTIFICATION_ATTEMPTS = Counter(
    "extsched_notification_attempts_total",
    "Webhook delivery attempts by outcome (delivered, retry, failed, refused)",
    ["type", "result"],
)
