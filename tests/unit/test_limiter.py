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


async def test_a_holder_of_several_slots_waits_for_all_and_keeps_its_place() -> None:
    limiter = Limiter(4)
    await limiter.acquire(3)
    big = asyncio.ensure_future(limiter.acquire(4))  # needs the whole window
    small = asyncio.ensure_future(limiter.acquire())  # fits now, but queues behind it
    await asyncio.sleep(0)
    assert not big.done() and not small.done()
    limiter.release(3)
    await asyncio.wait_for(big, 1)
    assert limiter.locked() and not small.done()
    limiter.release(4)
    await asyncio.wait_for(small, 1)
    limiter.release()
    assert not limiter.locked()


async def test_more_slots_than_the_window_take_the_whole_window() -> None:
    limiter = Limiter(2)
    await asyncio.wait_for(limiter.acquire(16), 1)
    assert limiter.locked()
    limiter.release(16)
    await asyncio.wait_for(limiter.acquire(2), 1)


async def test_a_cancelled_large_waiter_lets_those_behind_it_through() -> None:
    limiter = Limiter(2)
    await limiter.acquire()
    big = asyncio.ensure_future(limiter.acquire(2))
    small = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    assert not small.done()  # one slot is free, but the big waiter is first in line
    big.cancel()
    with pytest.raises(asyncio.CancelledError):
        await big
    await asyncio.wait_for(small, 1)
    assert limiter.locked()
