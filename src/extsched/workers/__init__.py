"""Entry points that drive execution: the postgres backend's scheduler, executor and reaper
loops, and the Temporal worker with its activities and workflows.

Like ``api/``, they sit on top: they call ``services/`` (which decides every outcome) and the
job-backend adapters in ``jobs/``; nothing below imports them.
"""
