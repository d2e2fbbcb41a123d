"""Time parity (SPEC §8): what real Temporal Schedules deliver around every DST change of the
coming year equals what the time engine fires, once the backend's compensation is in place
and the deliveries the activity skips as ``dst_repeat`` are set aside.

For each (cron, zone) pair the backend creates the schedule as it always does; then, per
offset change, the test (a) asks Temporal for the schedule's matching times in the 12 hours
around it, and (b) moves the spec's start to 90 minutes before it and reads
``describe().info.next_action_times``, comparing both with the engine's fires.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import Client, ScheduleUpdate, ScheduleUpdateInput

from extsched.domain import cron
from extsched.jobs.backend import HandleSpec
from extsched.jobs.postgres.backend import PostgresBackend
from extsched.jobs.temporal import dst
from extsched.jobs.temporal import spec as temporal_spec
from extsched.jobs.temporal.backend import TemporalBackend
from extsched.services.context import AppContext

PAIRS = [
    # fixed times in gaps (spring forward) and in repeated hours (fall back), and steps
    ("30 2 * * *", "Europe/Paris"),
    ("45 2 * * *", "Europe/Paris"),
    ("*/15 * * * *", "Europe/Paris"),
    ("30 * * * *", "Europe/Paris"),
    ("0 */2 * * *", "Europe/Paris"),
    ("30 2 * * *", "America/New_York"),
    ("30 1 * * *", "America/New_York"),
    ("*/15 * * * *", "America/New_York"),
    ("0 */2 * * *", "America/New_York"),
    ("30 2 * * *", "Australia/Sydney"),
    ("*/15 * * * *", "Australia/Sydney"),
    ("30 * * * *", "Australia/Sydney"),
    # Lord Howe moves by 30 minutes: 02:00 -> 02:30 in October, 02:00 -> 01:30 in April
    ("15 2 * * *", "Australia/Lord_Howe"),
    ("45 1 * * *", "Australia/Lord_Howe"),
    ("*/15 * * * *", "Australia/Lord_Howe"),
    ("0 */2 * * *", "Australia/Lord_Howe"),
    # St John's is UTC-03:30 / -02:30
    ("30 2 * * *", "America/St_Johns"),
    ("30 1 * * *", "America/St_Johns"),
    ("*/15 * * * *", "America/St_Johns"),
    # Chatham is UTC+12:45 / +13:45 and changes at 02:45 / 03:45
    ("0 3 * * *", "Pacific/Chatham"),
    ("*/15 * * * *", "Pacific/Chatham"),
    ("30 * * * *", "Pacific/Chatham"),
    # Troll moves by two hours; Dublin's "summer" is its standard time
    ("30 1 * * *", "Antarctica/Troll"),
    ("0 */2 * * *", "Europe/Dublin"),
]
AROUND = timedelta(hours=6)
LEAD = timedelta(minutes=90)


def engine_fires(
    expr: cron.CronExpr,
    zone: ZoneInfo,
    after: datetime,
    until: datetime,
    choice: cron.DstChoice = cron.DEFAULT_DST,
) -> list[datetime]:
    """The engine's fires in (after, until]."""
    fires = []
    for fire in cron.iter_fires(expr, zone, after, dst=choice):
        if fire.at > until:
            break
        fires.append(fire.at)
    return fires


async def matching_times(
    client: Client, schedule_id: str, lo: datetime, hi: datetime
) -> list[datetime]:
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(lo)
    end.FromDatetime(hi)
    response = await client.workflow_service.list_schedule_matching_times(
        ListScheduleMatchingTimesRequest(
            namespace=client.namespace, schedule_id=schedule_id, start_time=start, end_time=end
        )
    )
    return [t.ToDatetime(tzinfo=UTC) for t in response.start_time]


async def next_action_times_from(
    client: Client, schedule_id: str, start: datetime
) -> list[datetime]:
    """Move the schedule's spec start to ``start`` (test only) and read its next actions."""
    handle = client.get_schedule_handle(schedule_id)

    def move(current: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = current.description.schedule
        schedule.spec = replace(schedule.spec, start_at=start)
        return ScheduleUpdate(schedule=schedule)

    await handle.update(move)
    return list((await handle.describe()).info.next_action_times)


async def test_temporal_schedules_deliver_exactly_the_engines_fires_around_dst(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    assert len(PAIRS) >= 20
    client = await temporal.client()
    now = datetime.now(UTC)
    checked = pinned = skipped = 0
    for text, zone_name in PAIRS:
        expr, zone = cron.parse_cron(text), cron.load_zone(zone_name)
        handle = HandleSpec(
            "parity", uuid.uuid4(), uuid.uuid4(), text, zone_name, paused=True, note="parity"
        )
        async with ctx.db.connection() as conn:
            await temporal.put_handles(conn, [handle])
        described = await client.get_schedule_handle(handle.handle_id).describe()
        pinned += len(temporal_spec.read_spec(described.schedule.spec).pinned)
        changes = dst.offset_changes(zone, now + AROUND, now + timedelta(days=366))
        assert changes, f"{zone_name} changes its offset in the coming year"
        for change in changes:
            where = f"{text!r} in {zone_name} around {change.at:%Y-%m-%d %H:%M}Z"
            # (a) everything Temporal would deliver in the 12 hours around the change
            # (Temporal's matching times are those in (lo, hi])
            lo, hi = change.at - AROUND, change.at + AROUND
            delivered = await matching_times(client, handle.handle_id, lo, hi)
            kept = [at for at in delivered if dst.is_engine_fire(expr, zone, at)]
            skipped += len(delivered) - len(kept)
            assert kept == engine_fires(expr, zone, lo, hi), where
            # (b) describe's next action times, from shortly before the change
            start = change.at - LEAD
            upcoming = await next_action_times_from(client, handle.handle_id, start)
            assert len(upcoming) == 10, where
            kept = [at for at in upcoming if dst.is_engine_fire(expr, zone, at)]
            inclusive = start - timedelta(microseconds=1)  # a spec's start is inclusive
            assert kept == engine_fires(expr, zone, inclusive, upcoming[-1]), where
            checked += 1
    # the compensation was needed: fires were pinned and deliveries were set aside
    assert pinned > 0 and skipped > 0
    assert checked >= 2 * len(PAIRS) - 2  # Troll and others: two changes a year


def _at(instant: datetime) -> datetime:
    return instant


# Fixed times in each zone's gap and repeated range (the DST choices apply to those only).
CHOICE_PAIRS = [
    # 2027-03-28 01:00Z 02:00 -> 03:00; 2027-10-31 01:00Z 03:00 -> 02:00 (and 2026 alike)
    ("30 2 * * *", "Europe/Paris"),
    # 02:00 -> 03:00 in March; 02:00 -> 01:00 in November
    ("30 2 * * *", "America/New_York"),
    ("30 1 * * *", "America/New_York"),
    # 30-minute shift: 02:00 -> 02:30 in October, 02:00 -> 01:30 in April
    ("15 2 * * *", "Australia/Lord_Howe"),
    ("45 1 * * *", "Australia/Lord_Howe"),
]
CHOICES = [(gap, repeat) for gap in ("shift", "skip") for repeat in ("first", "last", "both")]


async def test_temporal_schedules_deliver_the_engines_fires_for_every_dst_choice(
    temporal: TemporalBackend, ctx: AppContext
) -> None:
    """For each choice, what Temporal delivers around every change of the coming year (less
    the deliveries the activity skips as dst_repeat, judged with the same choice) equals the
    engine's fires with that choice, which the postgres backend fires (its handle's next fire
    is checked too, from shortly before each change)."""
    client = await temporal.client()
    now = datetime.now(UTC)
    moved = 0
    for text, zone_name in CHOICE_PAIRS:
        expr, zone = cron.parse_cron(text), cron.load_zone(zone_name)
        changes = dst.offset_changes(zone, now + AROUND, now + timedelta(days=366))
        assert len(changes) == 2, zone_name
        for gap, repeat in CHOICES:
            choice = cron.DstChoice.of(gap, repeat)
            handle = HandleSpec(
                "parity",
                uuid.uuid4(),
                uuid.uuid4(),
                text,
                zone_name,
                paused=True,
                note="parity",
                dst_gap=gap,
                dst_repeat=repeat,
            )
            async with ctx.db.connection() as conn:
                await temporal.put_handles(conn, [handle])
            described = await client.get_schedule_handle(handle.handle_id).describe()
            assert temporal_spec.read_spec(described.schedule.spec).dst == choice
            for change in changes:
                where = f"{text!r} in {zone_name} around {change.at:%Y-%m-%d %H:%M}Z, {choice}"
                lo, hi = change.at - AROUND, change.at + AROUND
                delivered = await matching_times(client, handle.handle_id, lo, hi)
                kept = [at for at in delivered if dst.is_engine_fire(expr, zone, at, choice)]
                expected = engine_fires(expr, zone, lo, hi, choice)
                assert kept == expected, where
                # The postgres backend's handle, put shortly before the change, fires first
                # at the same instant.
                start = change.at - LEAD
                postgres_backend = PostgresBackend(ctx.db, functools.partial(_at, start))
                live = replace(handle, paused=False, note=None)
                async with ctx.db.transaction() as conn:
                    await postgres_backend.put_handles(conn, [live])
                    (info,) = [
                        h
                        for h in await postgres_backend.list_handles(conn, "parity")
                        if h.schedule_id == handle.schedule_id
                    ]
                    await postgres_backend.delete_handles(
                        conn, "parity", [(handle.install_id, handle.schedule_id)]
                    )
                upcoming = engine_fires(expr, zone, start, start + timedelta(days=2), choice)
                assert info.next_fire_at == upcoming[0], where
                # Temporal's next actions from the same instant, less the skipped ones.
                actions = await next_action_times_from(client, handle.handle_id, start)
                kept = [at for at in actions if dst.is_engine_fire(expr, zone, at, choice)]
                inclusive = start - timedelta(microseconds=1)
                assert kept == engine_fires(expr, zone, inclusive, actions[-1], choice), where
                moved += len(set(expected) ^ set(engine_fires(expr, zone, lo, hi)))
    # The choices changed what fires (else this test would prove nothing).
    assert moved > 0
