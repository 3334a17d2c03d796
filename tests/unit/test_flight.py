"""Flights: one result for many waiters, delivered by callback; cancelling a waiter cancels
nothing else."""

from __future__ import annotations

import asyncio

import pytest

from exporter.flight import Flight, wait_all


async def test_every_waiter_gets_the_value_and_late_ones_at_once() -> None:
    flight: Flight[str] = Flight()
    seen: list[str] = []
    flight.when_done(lambda f: seen.append(f.result()))
    waiter = asyncio.ensure_future(flight.wait())
    await asyncio.sleep(0)
    assert not flight.done() and not waiter.done()
    flight.finish("answer")
    flight.finish("ignored")  # a flight lands once
    assert seen == ["answer"]
    assert await waiter == "answer"
    flight.when_done(lambda f: seen.append(f.result() + " (late)"))
    assert seen == ["answer", "answer (late)"]


async def test_a_failure_is_raised_for_every_waiter() -> None:
    flight: Flight[str] = Flight()
    waiters = [asyncio.ensure_future(flight.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    flight.fail(ValueError("broken"))
    for waiter in waiters:
        with pytest.raises(ValueError, match="broken"):
            await waiter


async def test_a_cancelled_waiter_leaves_the_flight_to_the_others() -> None:
    flight: Flight[int] = Flight()
    quitter = asyncio.ensure_future(flight.wait())
    stayer = asyncio.ensure_future(flight.wait())
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    assert quitter.cancelled() and not flight.done()
    flight.finish(7)
    assert await stayer == 7


async def test_wait_all_wakes_once_when_the_last_lands() -> None:
    flights: list[Flight[int]] = [Flight() for _ in range(3)]
    flights[0].finish(0)  # already landed: not waited for
    waiting = asyncio.ensure_future(wait_all(flights))
    await asyncio.sleep(0)
    flights[1].finish(1)
    await asyncio.sleep(0)
    assert not waiting.done()
    flights[2].finish(2)
    await waiting
    assert [f.result() for f in flights] == [0, 1, 2]


async def test_result_before_landing_is_an_error() -> None:
    with pytest.raises(asyncio.InvalidStateError):
        Flight[int]().result()


async def test_flight_of_a_coroutine_carries_its_result_or_exception() -> None:
    async def value() -> int:
        await asyncio.sleep(0)
        return 5

    async def broken() -> int:
        raise RuntimeError("bug")

    assert await Flight.of(value()).wait() == 5
    with pytest.raises(RuntimeError, match="bug"):
        await Flight.of(broken()).wait()


async def test_a_task_flight_abandoned_by_its_waiter_stops_its_task() -> None:
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await asyncio.sleep(60)
        return 1

    flight = Flight.of(slow())
    waiter = asyncio.ensure_future(flight.wait())
    await started.wait()
    waiter.cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    assert flight.done()  # the task was cancelled, not left sleeping (spending budget, say)
    with pytest.raises(asyncio.CancelledError):
        flight.result()
