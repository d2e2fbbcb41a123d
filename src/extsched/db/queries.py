"""Loads ``queries.sql``: every statement under a ``-- name: <name>`` header, followed by at
least one comment line saying what the statement is for.

Keeping all SQL in one file makes the Citus rule (every tenant query filters by
``tenant_id``) reviewable at a glance; cross-tenant statements are marked ``[cross-tenant]``.
"""

from __future__ import annotations

import re
from pathlib import Path

_HEADER = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


def load(path: Path) -> dict[str, str]:
    text = path.read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if not body.lstrip("\n").startswith("--"):
            raise ValueError(f"query {name!r} in {path.name} has no description line")
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        sql = "\n".join(lines).strip().rstrip(";")
        if name in queries:
            raise ValueError(f"duplicate query name {name!r} in {path.name}")
        queries[name] = sql
    return queries


QUERIES: dict[str, str] = load(Path(__file__).with_name("queries.sql"))
