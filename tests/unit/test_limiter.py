"""The FIFO limiter that replaces asyncio.Semaphore on the hot paths."""

from __future__ import annotations

import asyncio

import pytest

from exporter.limiter import Limiter


async def test_never_more_holders_than_slots_and_fifo_order() -> None:
    limiter = Limiter(2)
    holding = 0
    most = 0
    order: list[int] = []

    async def work(i: int) -> None:
        nonlocal holding, most
        async with limiter:
            order.append(i)
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0)
            holding -= 1

    await asyncio.gather(*(work(i) for i in range(50)))
    assert most == 2
    assert order == list(range(50))
    assert not limiter.locked()


async def test_cancelled_waiter_loses_no_slot() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    limiter.release()  # skips the cancelled waiter, hands the slot to the second
    await asyncio.wait_for(second, 1)
    assert limiter.locked()
    limiter.release()
    assert not limiter.locked()


async def test_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    first = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # hands the slot to first ...
    first.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot went on to the second waiter
    limiter.release()
    assert not limiter.locked()


def test_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Limiter(0)
