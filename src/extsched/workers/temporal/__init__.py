"""The Temporal worker: activities (calling services) and workflows (deterministic)."""
