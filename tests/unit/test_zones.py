"""The time-zone picker's catalogue: canonical zones from tzdata's tables, other names aside."""

from __future__ import annotations

from datetime import UTC, datetime

from extsched.web import render, zones

WINTER = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)


def test_it_lists_canonical_zones_first_with_utc_at_the_top() -> None:
    canonical, others = zones.choices(WINTER)
    names = [z.name for z in canonical]
    assert names[0] == "UTC"
    assert names[1:] == sorted(names[1:])
    assert {"America/New_York", "Asia/Kolkata", "Europe/Kyiv", "Europe/Paris"} <= set(names)
    # Every name the time engine accepts is offered, once.
    assert sorted(names + [z.name for z in others]) == sorted(render.timezone_names())


def test_it_keeps_aliases_and_posix_zones_out_of_the_canonical_list() -> None:
    canonical, others = zones.choices(WINTER)
    hidden = {"US/Eastern", "Asia/Calcutta", "Etc/GMT+5", "Europe/Kiev", "Etc/UTC", "GMT"}
    assert not hidden & {z.name for z in canonical}
    notes = {z.name: z.note for z in others}
    assert notes["US/Eastern"] == "another name for America/New_York"
    assert notes["Asia/Calcutta"] == "another name for Asia/Kolkata"
    assert notes["Etc/GMT+5"] == "POSIX sign: 5 h behind UTC"
    assert notes["Etc/GMT-14"] == "POSIX sign: 14 h ahead of UTC"


def test_it_labels_each_zone_with_its_offset_at_that_moment() -> None:
    assert zones.offset_label("America/New_York", WINTER) == "UTC-05:00"
    assert zones.offset_label("America/New_York", SUMMER) == "UTC-04:00"
    assert zones.offset_label("Asia/Kolkata", SUMMER) == "UTC+05:30"
    assert zones.offset_label("Etc/GMT+5", SUMMER) == "UTC-05:00"
    assert zones.offset_label("UTC", SUMMER) == "UTC+00:00"
    assert zones.offset_label("America/St_Johns", WINTER) == "UTC-03:30"
