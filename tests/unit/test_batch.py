"""Group commit (db/batch.py): batching, one item per key per batch, failure isolation."""

from __future__ import annotations

import asyncio

import pytest

from extsched.db.batch import Batcher
from extsched.errors import BackendUnavailable


class Store:
    """A flush function recording the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.down = False

    async def flush(self, items: list[tuple[str, int]]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(0)  # a real statement yields to the loop
        if self.down:
            raise BackendUnavailable("down")
        if len(items) > 1 and any(n < 0 for _, n in items):
            raise ValueError("a bad item spoils a set-based statement")
        if any(n < 0 for _, n in items):
            raise ValueError(f"bad item {items[0]}")
        return [f"{k}:{n}" for k, n in items]


async def test_it_sends_concurrent_items_together_and_answers_each() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush)
    results = await asyncio.gather(*(batcher.submit((f"k{i}", i)) for i in range(50)))
    assert results == [f"k{i}:{i}" for i in range(50)]
    assert [len(b) for b in store.batches] == [50]


async def test_items_arriving_during_a_flush_go_out_together_in_the_next() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush)
    first = asyncio.ensure_future(batcher.submit(("a", 0)))
    await asyncio.sleep(0)  # the first flush is under way
    rest = await asyncio.gather(*(batcher.submit((f"b{i}", i)) for i in range(5)))
    assert await first == "a:0" and rest == [f"b{i}:{i}" for i in range(5)]
    assert [len(b) for b in store.batches] == [1, 5]


async def test_it_puts_each_key_once_in_a_batch() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush, key=lambda item: item[0])
    got = await asyncio.gather(*(batcher.submit(("same", i)) for i in range(3)))
    assert got == ["same:0", "same:1", "same:2"]
    assert store.batches == [[("same", 0)], [("same", 1)], [("same", 2)]]


async def test_it_caps_the_batch_size() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush, max_batch=4)
    await asyncio.gather(*(batcher.submit((f"k{i}", i)) for i in range(10)))
    assert [len(b) for b in store.batches] == [4, 4, 2]


async def test_one_bad_item_fails_alone() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush)
    results = await asyncio.gather(
        *(batcher.submit((f"k{i}", -1 if i == 2 else i)) for i in range(4)),
        return_exceptions=True,
    )
    assert results[:2] == ["k0:0", "k1:1"] and results[3] == "k3:3"
    assert isinstance(results[2], ValueError) and "k2" in str(results[2])


async def test_an_outage_fails_every_item_of_the_batch_for_the_callers_to_retry() -> None:
    store = Store()
    store.down = True
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush)
    results = await asyncio.gather(
        *(batcher.submit((f"k{i}", i)) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert len(store.batches) == 1  # not retried one by one
    store.down = False
    assert await batcher.submit(("k", 1)) == "k:1"


async def test_a_cancelled_caller_is_left_out_of_the_next_batch() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush)
    first = asyncio.ensure_future(batcher.submit(("a", 0)))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(batcher.submit(("gone", 1)))
    kept = asyncio.ensure_future(batcher.submit(("kept", 2)))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == "a:0" and await kept == "kept:2"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert store.batches == [[("a", 0)], [("kept", 2)]]


def test_it_keeps_working_when_used_from_a_new_event_loop() -> None:
    flushed: list[list[str]] = []

    async def slow_first(items: list[str]) -> list[str]:
        flushed.append(items)
        if len(flushed) == 1:
            await asyncio.sleep(3600)  # still in flight when its loop goes away
        return items

    batcher: Batcher[str, str] = Batcher(slow_first)
    old = asyncio.new_event_loop()
    abandoned = old.create_task(batcher.submit("left"))
    for _ in range(3):
        old.run_until_complete(asyncio.sleep(0))
    assert flushed == [["left"]]
    old.close()  # gone with its flush unfinished
    assert not abandoned.done()

    async def next_submit() -> str:
        return await asyncio.wait_for(batcher.submit("next"), 5)

    assert asyncio.run(next_submit()) == "next"
    assert flushed == [["left"], ["next"]]


async def test_lanes_never_share_a_batch() -> None:
    store = Store()
    batcher: Batcher[tuple[str, int], str] = Batcher(store.flush, lane=lambda item: item[0])
    got = await asyncio.gather(*(batcher.submit((f"t{i % 3}", i)) for i in range(9)))
    assert got == [f"t{i % 3}:{i}" for i in range(9)]
    assert sorted(store.batches) == [
        [("t0", 0), ("t0", 3), ("t0", 6)],
        [("t1", 1), ("t1", 4), ("t1", 7)],
        [("t2", 2), ("t2", 5), ("t2", 8)],
    ]
    assert (batcher.flushes, batcher.items) == (3, 9)
    assert batcher._lanes == {}  # idle lanes are dropped
