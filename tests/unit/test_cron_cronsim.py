"""cronsim as a second oracle, where its semantics are ours: zones without clock changes.

cronsim (healthchecks' cron evaluator) iterates in local time like our engine; it differs
around DST changes, where our rules are stricter (SPEC §8), and it reads a stepped range whose
bounds are equal (``7-7/7``) as running to the field's end (``7/7``), where classic cron and we
match the one value. Outside those, in UTC and in zones that have not changed their offset
for decades, both must produce exactly the same fires.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from extsched.domain.cron import CronExpr, iter_fires, parse_cron
from tests.unit.test_cron_properties import EXAMPLES, _expressions

EQUAL_BOUNDS_STEP = re.compile(r"\b(\d+)-\1/")
STEADY_ZONES = ["UTC", "Asia/Kolkata", "Asia/Tokyo", "America/Bogota", "Africa/Nairobi"]


@settings(max_examples=min(EXAMPLES, 200), deadline=None)
@given(
    _expressions(),
    st.sampled_from(STEADY_ZONES),
    st.integers(0, 3 * 366 * 86400),
)
@example(parse_cron("30 9 * * 1-5"), "Asia/Kolkata", 0)
@example(parse_cron("0 0 29 2 *"), "UTC", 0)
@example(parse_cron("*/7 */5 * * 0"), "Asia/Tokyo", 12345)
def test_it_fires_exactly_when_cronsim_does(expr: CronExpr, zone_name: str, offset: int) -> None:
    assume(not EQUAL_BOUNDS_STEP.search(expr.source))
    zone = ZoneInfo(zone_name)
    after = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    try:
        oracle = CronSim(expr.source, after.astimezone(zone))
    except CronSimError:
        assume(False)  # a spelling cronsim does not read (ours is a superset)
        raise
    theirs = [t.astimezone(UTC) for t in islice(oracle, 20)]
    ours = [f.at for f in islice(iter_fires(expr, zone, after), 20)]
    assert ours == theirs
