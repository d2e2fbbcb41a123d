"""The temporal job backend: one Temporal Schedule per handle.

The schedule's id is the deterministic handle id, so every call is idempotent. Calls happen
inside the service's database transaction, before it commits: any Temporal failure raises
BackendUnavailable, which rolls the transaction back (the API answers 503), and the handles
this call already changed are put back first (best effort), so the backend is left as before.
Temporal keeps the fires from then on; the worker (``worker.py``) executes them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleListDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from extsched.config import Settings
from extsched.db.pool import Conn, Database
from extsched.domain import cron
from extsched.domain.timing import utc_now
from extsched.errors import BackendUnavailable
from extsched.jobs.backend import HANDLE_PREFIX, HandleInfo, HandleSpec, RunRequest, handle_id
from extsched.jobs.temporal import dst, spec
from extsched.jobs.temporal.types import WORKFLOW, RunInput, fair_share

log = logging.getLogger("extsched.jobs")

RPC_TIMEOUT = timedelta(seconds=10)
CONNECT_TIMEOUT = timedelta(seconds=5)
PARALLEL_CALLS = 8  # concurrent RPCs for one multi-handle change
MIN_CATCHUP_WINDOW = timedelta(seconds=10)  # Temporal's smallest; 0 would mean its default
# The transport errors a lost Temporal shows up as (RuntimeError: failed client connect).
_UNAVAILABLE = (RPCError, RuntimeError, TimeoutError, OSError)


@dataclass(frozen=True)
class _Undo:
    """How to put one handle back: its previous schedule, or None if it did not exist."""

    handle_id: str
    previous: Schedule | None


class TemporalBackend:
    name = "temporal"
    transactional = False

    def __init__(
        self, settings: Settings, db: Database, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self._client: Client | None = None
        self._connecting: asyncio.Lock | None = None

    # ------------------------------------------------------------------ connection
    async def client(self) -> Client:
        """The Temporal client, connected on first use (and again after a failed attempt)."""
        if self._client is not None:
            return self._client
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._client is None:
                s = self.settings
                try:
                    self._client = await Client.connect(
                        s.temporal_address,
                        namespace=s.temporal_namespace,
                        connect_timeout=CONNECT_TIMEOUT,
                        retry_config=RetryConfig(max_retries=2, max_elapsed_time_millis=3000),
                    )
                except _UNAVAILABLE as exc:
                    raise _unavailable(exc) from exc
        return self._client

    async def ping(self) -> bool:
        try:
            client = await self.client()
            return await client.service_client.check_health(timeout=timedelta(seconds=3))
        except Exception:
            return False

    async def close(self) -> None:
        # The SDK client holds no resources that need an explicit close.
        self._client = None

    # ------------------------------------------------------------------ handles
    def schedule_for(self, handle: HandleSpec, now: datetime) -> Schedule:
        """The Temporal Schedule a handle spec stands for (spec built at ``now``)."""
        s = self.settings
        choice = cron.DstChoice.of(handle.dst_gap, handle.dst_repeat)
        return Schedule(
            action=ScheduleActionStartWorkflow(
                WORKFLOW,
                self._run_input(
                    handle.tenant_id,
                    handle.install_id,
                    handle.schedule_id,
                    None,
                    handle.cron,
                    handle.timezone,
                    choice,
                    jitter_seconds=handle.jitter_seconds,
                ),
                id=handle.handle_id,
                task_queue=s.temporal_task_queue,
                priority=fair_share(handle.tenant_id),
            ),
            # The window and pause bound what Temporal starts; the activity enforces them too.
            spec=dataclasses.replace(
                spec.build_spec(handle.cron, handle.timezone, now, choice),
                start_at=max(
                    (b for b in (handle.starts_at, handle.paused_until) if b), default=None
                ),
                end_at=handle.ends_at,
            ),
            policy=SchedulePolicy(
                # Temporal starts every fire; the activity decides overlap (skip, buffer_one,
                # allow) in services/execution.py as on the postgres backend, so a skipped fire
                # is recorded and allow runs side by side. Temporal's own SKIP would drop the
                # fire unrecorded while the previous workflow runs (or waits out its jitter).
                overlap=ScheduleOverlapPolicy.ALLOW_ALL,
                catchup_window=max(MIN_CATCHUP_WINDOW, timedelta(seconds=s.catchup_window_seconds)),
            ),
            state=ScheduleState(paused=handle.paused, note=handle.note),
        )

    def _run_input(
        self,
        tenant_id: str,
        install_id: uuid.UUID,
        schedule_id: uuid.UUID,
        run_id: uuid.UUID | None,
        cron_text: str = "",
        timezone: str = "",
        choice: cron.DstChoice = cron.DEFAULT_DST,
        *,
        jitter_seconds: int = 0,
    ) -> RunInput:
        s = self.settings
        # Any schedule's timeout_ms is at most EXTSCHED_MAX_TIMEOUT_MS: an attempt fits in it.
        lease = max(s.runner_timeout_ms, s.max_timeout_ms) / 1000 + s.lease_grace_seconds
        return RunInput(
            tenant_id=tenant_id,
            install_id=str(install_id),
            schedule_id=str(schedule_id),
            cron=cron_text,
            timezone=timezone,
            run_id=None if run_id is None else str(run_id),
            attempt_timeout_seconds=lease + 30,
            jitter_seconds=jitter_seconds,
            dst_gap="" if choice.gap is cron.DstGap.SHIFT else choice.gap.value,
            dst_repeat="" if choice.repeat is cron.DstRepeat.FIRST else choice.repeat.value,
        )

    async def put_handles(self, conn: Conn, specs: Sequence[HandleSpec]) -> None:
        if not specs:
            return
        client = await self.client()
        now = self.clock()
        await self._all_or_nothing(
            client, [functools.partial(self._put, client, h, now) for h in specs], "update"
        )

    async def delete_handles(
        self, conn: Conn, tenant_id: str, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> None:
        if not keys:
            return
        client = await self.client()
        ids = [handle_id(tenant_id, install_id, schedule_id) for install_id, schedule_id in keys]
        await self._all_or_nothing(
            client, [functools.partial(self._delete, client, i) for i in ids], "delete"
        )

    async def _all_or_nothing(
        self,
        client: Client,
        changes: Sequence[Callable[[], Awaitable[_Undo | None]]],
        what: str,
    ) -> None:
        """Apply every change; if one fails, undo the others (best effort) and raise."""
        slots = asyncio.Semaphore(PARALLEL_CALLS)

        async def guarded(change: Callable[[], Awaitable[_Undo | None]]) -> _Undo | None:
            async with slots:
                return await change()

        results = await asyncio.gather(*(guarded(c) for c in changes), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            return
        undos = [r for r in results if isinstance(r, _Undo)]
        await self._undo(client, undos)
        for failure in failures:
            if not isinstance(failure, _UNAVAILABLE):
                raise failure
        log.warning(
            "temporal %s failed; changes undone", what, extra={"error": str(failures[0])[:300]}
        )
        raise _unavailable(failures[0]) from failures[0]

    async def _put(self, client: Client, handle: HandleSpec, now: datetime) -> _Undo:
        """Create or update one schedule in place; returns how to undo it."""
        wanted = self.schedule_for(handle, now)
        schedule_handle = client.get_schedule_handle(handle.handle_id)
        previous: list[Schedule] = []

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            previous[:] = [current.description.schedule]
            return ScheduleUpdate(schedule=wanted)

        try:
            await schedule_handle.update(replace, rpc_timeout=RPC_TIMEOUT)
            return _Undo(handle.handle_id, previous[0])
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        try:
            await client.create_schedule(handle.handle_id, wanted, rpc_timeout=RPC_TIMEOUT)
            return _Undo(handle.handle_id, None)
        except ScheduleAlreadyRunningError:
            # Created concurrently by another process: update it like any existing one.
            await schedule_handle.update(replace, rpc_timeout=RPC_TIMEOUT)
            return _Undo(handle.handle_id, previous[0])

    async def _delete(self, client: Client, schedule_id: str) -> _Undo | None:
        """Delete one schedule; a missing one is fine (nothing to undo)."""
        schedule_handle = client.get_schedule_handle(schedule_id)
        try:
            described = await schedule_handle.describe(rpc_timeout=RPC_TIMEOUT)
            await schedule_handle.delete(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return _Undo(schedule_id, described.schedule)

    async def _undo(self, client: Client, undos: Sequence[_Undo]) -> None:
        for undo in undos:
            schedule_handle = client.get_schedule_handle(undo.handle_id)
            previous = undo.previous
            try:
                if previous is None:
                    await schedule_handle.delete(rpc_timeout=RPC_TIMEOUT)
                    continue
                try:
                    await schedule_handle.update(
                        functools.partial(_restore, previous), rpc_timeout=RPC_TIMEOUT
                    )
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    await client.create_schedule(undo.handle_id, previous, rpc_timeout=RPC_TIMEOUT)
            except Exception as exc:
                # Reconciliation repairs what could not be put back.
                log.warning(
                    "could not undo a temporal change",
                    extra={"handle_id": undo.handle_id, "error": str(exc)[:300]},
                )

    # ------------------------------------------------------------------ runs
    async def start_run(self, conn: Conn, request: RunRequest) -> None:
        """Start the run-now workflow; its id is the run id, so it starts once at most."""
        client = await self.client()
        try:
            await client.start_workflow(
                WORKFLOW,
                self._run_input(
                    request.tenant_id, request.install_id, request.schedule_id, request.run_id
                ),
                id=str(request.run_id),
                task_queue=self.settings.temporal_task_queue,
                priority=fair_share(request.tenant_id),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            return  # a repeat of the same run-now: it is already on its way
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    # ------------------------------------------------------------------ listing
    async def list_handles(self, conn: Conn, tenant_id: str | None = None) -> list[HandleInfo]:
        """Every ``extsched:`` schedule (of one tenant). Temporal's listing is eventually
        consistent: a schedule changed a moment ago may still show its previous state."""
        prefix = HANDLE_PREFIX if tenant_id is None else f"{HANDLE_PREFIX}{tenant_id}:"
        client = await self.client()
        found: list[HandleInfo] = []
        try:
            async for listed in self._list(client, prefix):
                info = await self._handle_info(client, listed)
                if info is not None:
                    found.append(info)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        return sorted(found, key=lambda h: (h.tenant_id, str(h.schedule_id)))

    async def _list(self, client: Client, prefix: str) -> AsyncIterator[_Listed]:
        quoted = prefix.replace("\\", "\\\\").replace('"', '\\"')
        query = f'ScheduleId STARTS_WITH "{quoted}"'
        try:
            async for entry in await client.list_schedules(query, rpc_timeout=RPC_TIMEOUT):
                if entry.id.startswith(prefix):
                    yield _Listed.of(entry)
            return
        except RPCError as exc:
            if exc.status != RPCStatusCode.INVALID_ARGUMENT:
                raise
        # A visibility store without STARTS_WITH: list everything and filter here.
        async for entry in await client.list_schedules(rpc_timeout=RPC_TIMEOUT):
            if entry.id.startswith(prefix):
                yield _Listed.of(entry)

    async def _handle_info(self, client: Client, listed: _Listed) -> HandleInfo | None:
        key = _parse_handle_id(listed.id)
        if key is None:
            return None
        tenant_id, install_id, schedule_id = key
        view = spec.read_spec(listed.spec)
        paused, note, upcoming = listed.paused, listed.note, listed.next_action_times
        if view.cron is None or view.timezone is None:
            # A listing may trim large specs: read this one in full.
            try:
                described = await client.get_schedule_handle(listed.id).describe(
                    rpc_timeout=RPC_TIMEOUT
                )
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
            view = spec.read_spec(described.schedule.spec)
            paused, note = described.schedule.state.paused, described.schedule.state.note
            upcoming = list(described.info.next_action_times)
        if view.cron is None or view.timezone is None:
            return None  # not a schedule this backend made
        return HandleInfo(
            handle_id=listed.id,
            tenant_id=tenant_id,
            install_id=install_id,
            schedule_id=schedule_id,
            cron=view.cron,
            timezone=view.timezone,
            paused=paused,
            note=note,
            next_fire_at=None if paused else _first_engine_fire(view, upcoming),
        )

    # ------------------------------------------------------------------ compensation
    async def refresh_compensation(self) -> int:
        """Re-pin the DST compensation of every schedule for the coming dst.HORIZON (the
        reconciler and the worker call this periodically); returns how many changed.

        A schedule is updated only when the fires it should pin differ from the ones it
        pins (a new offset change came into the horizon), so a refresh is cheap."""
        client = await self.client()
        now = self.clock()
        stale: list[str] = []
        try:
            async for listed in self._list(client, HANDLE_PREFIX):
                view = spec.read_spec(listed.spec)
                if view.cron is None or view.timezone is None:
                    stale.append(listed.id)  # trimmed listing: check it in full below
                elif spec.pinned_after(view, now) != _wanted_pins(view, now):
                    stale.append(listed.id)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        changed = 0
        for schedule_id in stale:
            try:
                if await self._repin(client, schedule_id, now):
                    changed += 1
            except _UNAVAILABLE as exc:
                log.warning(
                    "could not refresh DST compensation",
                    extra={"handle_id": schedule_id, "error": str(exc)[:300]},
                )
        if changed:
            log.info("DST compensation refreshed", extra={"schedules": changed})
        return changed

    async def _repin(self, client: Client, schedule_id: str, now: datetime) -> bool:
        updated: list[bool] = []

        def repin(current: ScheduleUpdateInput) -> ScheduleUpdate | None:
            schedule = current.description.schedule
            view = spec.read_spec(schedule.spec)
            if view.cron is None or view.timezone is None:
                return None
            if spec.pinned_after(view, now) == _wanted_pins(view, now):
                return None
            # Only the compensation changes: the window and pause bounds stay as they were.
            schedule.spec = dataclasses.replace(
                spec.build_spec(view.cron, view.timezone, now, view.dst),
                start_at=schedule.spec.start_at,
                end_at=schedule.spec.end_at,
            )
            updated.append(True)
            return ScheduleUpdate(schedule=schedule)

        try:
            await client.get_schedule_handle(schedule_id).update(repin, rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        return bool(updated)


@dataclass(frozen=True)
class _Listed:
    """One schedule as a listing shows it (the spec may be trimmed or missing)."""

    id: str
    spec: ScheduleSpec | None
    paused: bool
    note: str | None
    next_action_times: list[datetime]

    @classmethod
    def of(cls, entry: ScheduleListDescription) -> _Listed:
        listed = entry.schedule
        return cls(
            id=entry.id,
            spec=listed.spec if listed else None,
            paused=listed.state.paused if listed else False,
            note=listed.state.note if listed else None,
            next_action_times=list(entry.info.next_action_times) if entry.info else [],
        )


def _parse_handle_id(value: str) -> tuple[str, uuid.UUID, uuid.UUID] | None:
    """(tenant, install, schedule) from ``extsched:{tenant}:{install}:{schedule}``."""
    if not value.startswith(HANDLE_PREFIX):
        return None
    tenant_id, _, rest = value.removeprefix(HANDLE_PREFIX).rpartition(":")
    tenant_id, _, install = tenant_id.rpartition(":")
    try:
        return tenant_id, uuid.UUID(install), uuid.UUID(rest)
    except ValueError:
        return None


def _wanted_pins(view: spec.SpecView, now: datetime) -> frozenset[datetime]:
    assert view.cron is not None and view.timezone is not None
    try:
        return spec.wanted_pins(view.cron, view.timezone, now, view.dst)
    except cron.CronError:
        return frozenset()


def _first_engine_fire(view: spec.SpecView, upcoming: Sequence[datetime]) -> datetime | None:
    """The next fire Temporal will deliver that the engine also produces (others are
    skipped as dst_repeat when they arrive)."""
    assert view.cron is not None and view.timezone is not None
    try:
        expr, zone = cron.parse_cron(view.cron), cron.load_zone(view.timezone)
    except cron.CronError:
        return upcoming[0] if upcoming else None
    return next((at for at in upcoming if dst.is_engine_fire(expr, zone, at, view.dst)), None)


def _restore(previous: Schedule, _: ScheduleUpdateInput) -> ScheduleUpdate:
    return ScheduleUpdate(schedule=previous)


def _unavailable(exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(
        f"the Temporal service is unavailable ({exc.__class__.__name__}); nothing was changed"
    )
