"""The temporal job backend: Temporal Schedules fire, Temporal workers execute (docs/temporal.md).

- ``backend.py``: ``TemporalBackend``, the JobBackend on Temporal Schedules;
- ``spec.py`` and ``dst.py``: the schedule spec, with the DST compensation;
- ``workflows.py``, ``activities.py``, ``worker.py``: executing the runs.
"""
