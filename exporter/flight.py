"""A result many parties wait for, delivered by plain callbacks.

Why not an asyncio future: a blocklist cycle has 200,000 questions in the
air, each needing a shared "answer arrives here" object. A future costs an
allocation through the loop, and every waiter it wakes is a ``call_soon``
handle and an event-loop iteration. A flight calls its waiters directly
when the answer lands, so a run that asks twenty questions wakes once, on
its last answer.

Nobody owns a flight: it is finished by whoever produces the answer (the
transport). A waiter that is cancelled just stops listening, and the
others still get their answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Flight(Generic[T]):
    __slots__ = ("_callbacks", "_error", "_value")

    def __init__(self) -> None:
        # exporter.dns._Asking sets these three itself (one call less per question):
        # keep it in step.
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Flight[T]], None]] | None = []

    def done(self) -> bool:
        return self._callbacks is None

    def finish(self, value: T) -> None:
        """Deliver the value to every waiter (once; later calls are ignored)."""
        self._land(value, None)

    def fail(self, error: BaseException) -> None:
        """Deliver an exception instead: ``result()`` raises it for every waiter."""
        self._land(None, error)

    def _land(self, value: T | None, error: BaseException | None) -> None:
        # exporter.dns._Asking.__call__ lands its answers inline: keep it in step.
        callbacks = self._callbacks
        if callbacks is None:
            return
        self._callbacks = None
        self._value, self._error = value, error
        for callback in callbacks:
            callback(self)

    def result(self) -> T:
        if self._callbacks is not None:
            raise asyncio.InvalidStateError("the flight has not landed")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def when_done(self, callback: Callable[[Flight[T]], None]) -> None:
        """Call back when it lands; at once when it already has. Callbacks must not raise."""
        if self._callbacks is None:
            callback(self)
        else:
            self._callbacks.append(callback)

    def discard(self, callback: Callable[[Flight[T]], None]) -> None:
        if self._callbacks is not None and callback in self._callbacks:
            self._callbacks.remove(callback)

    async def wait(self) -> T:
        """The result; being cancelled while waiting leaves the flight to the others."""
        if self._callbacks is not None:
            await wait_all((self,))
        return self.result()

    @staticmethod
    def of(awaitable: Awaitable[T]) -> Flight[T]:
        """A flight finished by a task running ``awaitable`` (for work that must await).

        It is its asker's alone: when its last waiter gives up, the task is cancelled,
        so a /probe that timed out stops spending (a zone's query budget, say).
        """
        flight: _TaskFlight[T] = _TaskFlight()

        def landed(task: asyncio.Future[T]) -> None:
            if task.cancelled():
                flight.fail(asyncio.CancelledError())
            elif (error := task.exception()) is not None:
                flight.fail(error)
            else:
                flight.finish(task.result())

        flight.task = background(awaitable)
        flight.task.add_done_callback(landed)
        return flight


class _TaskFlight(Flight[T]):
    __slots__ = ("task",)

    def __init__(self) -> None:
        super().__init__()
        self.task: asyncio.Future[T] | None = None

    def discard(self, callback: Callable[[Flight[T]], None]) -> None:
        super().discard(callback)
        if self._callbacks is not None and not self._callbacks and self.task is not None:
            self.task.cancel()


#: Tasks nobody awaits, kept referenced until done: the loop itself holds tasks weakly.
_BACKGROUND: set[asyncio.Future[Any]] = set()


def background(awaitable: Awaitable[T]) -> asyncio.Future[T]:
    """Run ``awaitable`` as a task that cannot be garbage-collected half-way."""
    task = asyncio.ensure_future(awaitable)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


async def wait_all(flights: Sequence[Flight[T]]) -> None:
    """Wait until every flight has landed, waking once. Cancelling it cancels none of them."""
    pending = [flight for flight in flights if not flight.done()]
    if not pending:
        return
    remaining = len(pending)
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def landed(_: Flight[T]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not waiter.done():
            waiter.set_result(None)

    for flight in pending:
        flight.when_done(landed)
    try:
        await waiter
    finally:
        if remaining:
            for flight in pending:
                flight.discard(landed)
