"""Connection pool and the only place SQL is executed.

Every statement is named (see ``queries.sql``) and runs through :class:`Database`, which
counts queries (for the constant-query tests and benchmarks) and translates driver errors
once, here at the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import set_json_loads

from extsched.db.queries import QUERIES
from extsched.errors import (
    AlreadyInstalled,
    BackendUnavailable,
    ExtschedError,
    ValidationFailed,
    field_error,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]
Conn = psycopg.AsyncConnection[Row]


class Database:
    """An async psycopg pool plus named-query helpers."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 20) -> None:
        self.url = url
        self.query_count = 0
        self.pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
            configure=_configure,
            check=_check_if_idle,
            # How long a request waits for a connection before answering 503.
            timeout=5.0,
            name="extsched",
        )

    async def open(self, *, wait: bool = True) -> None:
        await self.pool.open(wait=wait, timeout=30.0)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection in autocommit mode; database outages become 503s."""
        with translate_errors():
            async with self.pool.connection() as conn:
                try:
                    yield conn
                finally:
                    # When it went back, for _check_if_idle. Not the pool's ``reset`` hook:
                    # with one, the pool hands every returned connection to a worker task.
                    conn._extsched_returned = time.monotonic()  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A pooled connection inside one transaction, committed on clean exit."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def pipeline(self, conn: Conn) -> AsyncIterator[None]:
        """Send the statements run inside in one round trip (psycopg's pipeline mode):
        ``execute`` and ``send`` only queue their statement, and the end of the block sends
        everything and waits once; read a ``send`` cursor's rows after the block. A failed
        statement's error is raised at the end of the block (or by a fetch inside it, which
        costs a round trip of its own), translated like any other. For runs of statements on
        a hot path whose results decide nothing until they have all run."""
        with translate_errors():
            async with conn.pipeline():
                yield

    async def send(
        self, conn: Conn, name: str, params: Mapping[str, Any] | None = None
    ) -> psycopg.AsyncCursor[Row]:
        """Run a named query and return its cursor; inside ``pipeline`` the query is only
        queued, and its rows are there to fetch after the block."""
        return await self._execute(conn, name, params)

    async def fetch_one(
        self, conn: Conn, name: str, params: Mapping[str, Any] | None = None
    ) -> Row | None:
        cur = await self._execute(conn, name, params)
        return await cur.fetchone()

    async def fetch_all(
        self,
        conn: Conn,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        prepare: bool = True,
    ) -> list[Row]:
        """Every row of a named query. ``prepare=False`` plans it with this call's values each
        time: for statements whose optional filters (``%(x)s IS NULL OR ...``) must fold away
        so each combination reaches its index, which a cached generic plan would not do."""
        cur = await self._execute(conn, name, params, prepare=prepare)
        return await cur.fetchall()

    async def fetch_tuples(
        self, conn: Conn, name: str, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Every row of a named query as plain tuples (bulk exports: no dict per row),
        planned with this call's values like ``fetch_all(prepare=False)``."""
        self.query_count += 1
        with translate_errors():
            async with conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute(QUERIES[name], params or {}, prepare=False)
                return await cur.fetchall()

    async def fetch_val(
        self, conn: Conn, name: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        row = await self.fetch_one(conn, name, params)
        return None if row is None else next(iter(row.values()))

    async def execute(self, conn: Conn, name: str, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement; returns the number of rows it changed."""
        cur = await self._execute(conn, name, params)
        return cur.rowcount

    async def _execute(
        self, conn: Conn, name: str, params: Mapping[str, Any] | None, *, prepare: bool = True
    ) -> psycopg.AsyncCursor[Row]:
        self.query_count += 1
        with translate_errors():
            return await conn.execute(QUERIES[name], params or {}, prepare=prepare)

    async def ping(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109 - bounded probe
        """Whether the database answers within ``timeout`` seconds (for /readyz)."""
        try:
            async with asyncio.timeout(timeout), self.pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:
            return False


_IDLE_CHECK_SECONDS = 5.0


def _json_loads(data: str | bytes) -> Any:
    """``json.loads``, except that a value nested too deep for Python's decoder (stored by
    hand: requests are limited to 64 levels) reads as null instead of failing the whole query,
    so one bad row cannot break every listing it appears in."""
    try:
        return json.loads(data)
    except RecursionError:
        log.warning("a stored JSON value is nested too deeply to decode; read as null")
        return None


async def _configure(conn: Conn) -> None:
    set_json_loads(_json_loads, conn)


async def _check_if_idle(conn: Conn) -> None:
    """Ping a connection before reuse only if it sat idle: a hot connection is known good, and
    pinging on every checkout costs a round trip per query (~15% of the run hot path). An idle
    one may have died with a server restart, and is replaced instead of failing a request."""
    returned = getattr(conn, "_extsched_returned", None)
    if returned is not None and time.monotonic() - returned < _IDLE_CHECK_SECONDS:
        return
    await psycopg_pool.AsyncConnectionPool.check_connection(conn)


# Unique constraints whose violation is a business outcome, by constraint name: the error the
# caller gets instead of the driver's (SPEC §5). Any other violation is a bug and passes on.
UNIQUE_VIOLATIONS: dict[str, Callable[[], ExtschedError]] = {
    "tenant_extension_install_extension_key": AlreadyInstalled,
    "tenant_extension_schedule_name_key": lambda: ValidationFailed(
        "the schedule is invalid",
        field_errors={"name": "another schedule of this extension already has this name"},
    ),
    "extension_schedule_run_idempotency_key": lambda: field_error(
        "Idempotency-Key", "is being used concurrently"
    ),
}


@contextlib.contextmanager
def translate_errors() -> Any:
    """Turn driver errors into the service's: a lost database into BACKEND_UNAVAILABLE, a
    known unique violation into its business error, unstorable input into a 422."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        business = UNIQUE_VIOLATIONS.get(constraint_name(exc) or "")
        if business is None:
            raise
        raise business() from None
    except psycopg.DataError as exc:
        # Input the database cannot store (a NUL character, an out-of-range number): the
        # caller's data is at fault, and nothing was written.
        raise ValidationFailed(
            f"the request contains a value that cannot be stored: {exc.__class__.__name__}"
        ) from exc
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
            raise
        log.warning("database unavailable: %s", exc.__class__.__name__)
        raise BackendUnavailable("the database is unavailable; nothing was changed") from exc


def constraint_name(exc: psycopg.errors.IntegrityError) -> str | None:
    """The name of the violated constraint or unique index, if the server reported it."""
    diag = exc.diag
    return diag.constraint_name if diag is not None else None
