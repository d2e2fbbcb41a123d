"""Waiting for something that happens on its own (a worker's loop, Temporal, another
transaction): poll for the condition, never sleep for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    within: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until ``check`` accepts its value; returns the accepted value or fails
    with the last one after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)  # polling interval, not a wait for an outcome
