"""What the time-zone picker offers: canonical zones first, every other name kept aside.

"Canonical" means a zone the tz database's own tables list for a country (``zone1970.tab``
and ``zone.tab`` from the ``tzdata`` package, read offline) plus ``UTC``. Everything else the
time engine accepts (``US/Eastern``, ``Asia/Calcutta``, the sign-inverted ``Etc/GMT+5``) stays
valid but is only offered when typed exactly. The picker is a view: what the server accepts
and stores is decided by the schedule services, unchanged.
"""

from __future__ import annotations

import importlib.resources
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from extsched.web import render

_ETC_GMT = re.compile(r"Etc/GMT([+-])(\d+)")


@dataclass(frozen=True)
class ZoneChoice:
    """One name in the picker with its UTC offset at the time the page was rendered."""

    name: str
    offset: str
    canonical: bool
    note: str = ""


def _tab_names(filename: str) -> set[str]:
    text = (importlib.resources.files("tzdata") / "zoneinfo" / filename).read_text("utf-8")
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            cols = line.split("\t")
            if len(cols) >= 3:
                names.add(cols[2])
    return names


@lru_cache(maxsize=1)
def canonical_names() -> frozenset[str]:
    """Zones the tables list (those the time engine accepts), plus ``UTC``."""
    accepted = set(render.timezone_names())
    try:
        listed = _tab_names("zone1970.tab") | _tab_names("zone.tab")
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - tzdata is a dependency
        listed = set()
    return frozenset((listed | {"UTC"}) & accepted)


def _zone_bytes(name: str) -> bytes | None:
    parts = ["tzdata", "zoneinfo", *name.split("/")]
    try:
        return (importlib.resources.files(".".join(parts[:-1])) / parts[-1]).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


@lru_cache(maxsize=1)
def alias_targets() -> dict[str, str]:
    """Non-canonical name -> the canonical zone with the same rules (a tz "link"), when the
    ``tzdata`` package stores identical data for both."""
    by_data: dict[bytes, str] = {}
    for name in sorted(canonical_names()):
        data = _zone_bytes(name)
        if data is not None:
            by_data.setdefault(data, name)
    targets = {}
    for name in render.timezone_names():
        if name in canonical_names():
            continue
        data = _zone_bytes(name)
        if data is not None and data in by_data:
            targets[name] = by_data[data]
    return targets


def offset_label(name: str, now: datetime) -> str:
    """``UTC+05:30`` / ``UTC-05:00`` / ``UTC+00:00``: the zone's offset at ``now``."""
    offset = now.astimezone(zoneinfo.ZoneInfo(name)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _note(name: str) -> str:
    etc = _ETC_GMT.fullmatch(name)
    if etc:
        ahead = "behind" if etc.group(1) == "+" else "ahead of"
        return f"POSIX sign: {etc.group(2)} h {ahead} UTC"
    target = alias_targets().get(name)
    return f"another name for {target}" if target else "another name"


def choices(now: datetime) -> tuple[list[ZoneChoice], list[ZoneChoice]]:
    """``(canonical, others)``, each sorted by name, ``UTC`` first among the canonical."""
    canonical: list[ZoneChoice] = []
    others: list[ZoneChoice] = []
    for name in render.timezone_names():  # sorted, UTC first
        if name in canonical_names():
            canonical.append(ZoneChoice(name, offset_label(name, now), True))
        else:
            others.append(ZoneChoice(name, offset_label(name, now), False, _note(name)))
    return canonical, others
