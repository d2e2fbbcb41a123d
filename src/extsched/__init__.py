"""extsched: cron schedules for installed extensions ' API endpoints."""

__version__ = "0.1.0"
