"""Group commit for hot statements: many concurrent callers, one statement per batch.

Each caller submits one item and awaits its own result. Items submitted while a flush is running
wait for it and then go out together in the next one, so under load a statement carries as many
items as arrived meanwhile, and at rest an item goes out at once (no added delay, no timer).

An item whose ``key`` is already in the batch waits for the next one: a batch touches each key
(e.g. each schedule) once, so a set-based statement never has to pick between two rows.

With ``lane``, items of different lanes (e.g. tenants) never share a batch: each lane batches
on its own, and the lanes flush side by side. On Citus that keeps every statement on one shard.

A failure of the whole batch (the database is unavailable) fails every item, and each caller
decides whether to retry. Any other failure of a batch of several items is retried item by
item, so one bad item cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from extsched.errors import BackendUnavailable

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


class Batcher(Generic[P, R]):
    def __init__(
        self,
        flush: Callable[[list[P]], Awaitable[list[R]]],
        *,
        key: Callable[[P], Hashable] | None = None,
        lane: Callable[[P], Hashable] | None = None,
        max_batch: int = 200,
        name: str = "batch",
    ) -> None:
        self._flush = flush
        self._key = key
        self._lane = lane
        self._lanes: dict[Hashable, Batcher[P, R]] = {}
        self._parent: Batcher[P, R] | None = None
        self._max = max_batch
        self._name = name
        self._pending: list[tuple[P, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        #: How many statements carried how many items (for tests and benchmarks).
        self.flushes = 0
        self.items = 0

    async def submit(self, item: P) -> R:
        if self._lane is not None:
            return await self._submit_to_lane(self._lane(item), item)
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            # Used from a new event loop (the old one is gone): forget what it left behind.
            self._task = None
            self._pending = [e for e in self._pending if e[1].get_loop() is loop]
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"{self._name} flusher")
        return await future

    async def _submit_to_lane(self, lane: Hashable, item: P) -> R:
        child = self._lanes.get(lane)
        if child is None:
            child = Batcher(self._flush, key=self._key, max_batch=self._max, name=self._name)
            child._parent = self
            self._lanes[lane] = child
        try:
            return await child.submit(item)
        finally:
            idle = not child._pending and (child._task is None or child._task.done())
            if idle and self._lanes.get(lane) is child:
                del self._lanes[lane]  # lanes exist only while they have work

    async def _drain(self) -> None:
        try:
            await self._drain_pending()
        except asyncio.CancelledError:
            for _, future in self._pending:
                future.cancel()
            self._pending = []
            raise

    async def _drain_pending(self) -> None:
        while self._pending:
            batch: list[tuple[P, asyncio.Future[R]]] = []
            rest: list[tuple[P, asyncio.Future[R]]] = []
            keys: set[Hashable] = set()
            for entry in self._pending:
                item, future = entry
                if future.done():  # the caller was cancelled
                    continue
                k = self._key(item) if self._key is not None else None
                if len(batch) >= self._max or (k is not None and k in keys):
                    rest.append(entry)
                    continue
                keys.add(k)
                batch.append(entry)
            self._pending = rest
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[tuple[P, asyncio.Future[R]]]) -> None:
        for counter in (self, self._parent):
            if counter is not None:
                counter.flushes += 1
                counter.items += len(batch)
        try:
            results = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except BackendUnavailable as exc:
            for _, future in batch:
                _settle(future, exc=exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("%s of %d failed; retrying one by one", self._name, len(batch))
            for entry in batch:
                await self._run([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
